package httpapi

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/batonhq/baton/placement"
	"github.com/batonhq/baton/scheduler"
	"github.com/batonhq/baton/scheduler/store"
)

// OpenAPI is the API's OpenAPI 3 document.
//
//go:embed openapi.json
var OpenAPI []byte

// maxBody bounds request bodies; a workload request is a few hundred bytes.
const maxBody = 1 << 20

// Cluster is what the API needs from the scheduler.
type Cluster interface {
	Nodes() []scheduler.NodeView
	Node(name string) (scheduler.NodeView, error)
	Workloads() []store.Workload
	Workload(id string) (store.Workload, error)
	CreateWorkload(ctx context.Context, req scheduler.WorkloadRequest) (store.Workload, error)
	DeleteWorkload(ctx context.Context, id string) (store.Workload, bool, error)
	Plan(req scheduler.WorkloadRequest) (placement.Decision, error)
	Leadership() (leader bool, epoch uint64, holder string)
	StartMigration(ctx context.Context, idOrName string, req scheduler.MigrationRequest) (scheduler.MigrationView, error)
	Migrations() []scheduler.MigrationView
	Migration(id string) (scheduler.MigrationView, error)
	DrainNode(ctx context.Context, name string) (scheduler.NodeView, error)
	UndrainNode(ctx context.Context, name string) (scheduler.NodeView, error)
	PlanRebalance() scheduler.RebalancePlan
	RebalanceEvents() []scheduler.RebalanceEvent

	CreateGroup(ctx context.Context, req scheduler.GroupRequest) (scheduler.GroupView, error)
	DeleteGroup(ctx context.Context, name string) (scheduler.GroupView, error)
	MoveGroup(ctx context.Context, name, node string) (scheduler.GroupView, error)
	ResetGroupFailures(ctx context.Context, name, node string) (scheduler.GroupView, error)
	Groups() ([]scheduler.GroupView, error)
	Group(name string) (scheduler.GroupView, error)
	FenceNode(ctx context.Context, node string, confirmOff bool) error
	SetVotes(ctx context.Context, node string, votes int) (scheduler.QuorumView, error)
	Quorum() (scheduler.QuorumView, error)
	Events(since time.Time) []scheduler.Event
}

// NodeRequest is the body of POST /v1/groups/{name}/move and
// POST /v1/groups/{name}/reset: a node ("" for none or every node).
type NodeRequest struct {
	Node string `json:"node"`
}

// FenceRequest is the body of POST /v1/nodes/{name}/fence.
type FenceRequest struct {
	// ConfirmOff vouches that the node is already off (powered down by
	// hand) instead of fencing it through its devices.
	ConfirmOff bool `json:"confirm_off"`
}

// VotesRequest is the body of PUT /v1/nodes/{name}/votes.
type VotesRequest struct {
	Votes *int `json:"votes"`
}

// FenceAccepted is the answer to POST /v1/nodes/{name}/fence.
type FenceAccepted struct {
	Node    string `json:"node"`
	Message string `json:"message"`
}

// Error is the body of every error response.
type Error struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says what went wrong: a stable code and a message for people.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Health is the body of GET /v1/health.
type Health struct {
	Status     string `json:"status"`
	Leader     bool   `json:"leader"`
	Epoch      uint64 `json:"epoch"`
	LeaderName string `json:"leader_name"`
	Nodes      int    `json:"nodes"`
	Workloads  int    `json:"workloads"`
}

// PlanResult is the body of POST /v1/plan.
type PlanResult struct {
	Fits        bool                  `json:"fits"`
	Node        string                `json:"node,omitempty"`
	Strategy    string                `json:"strategy"`
	Candidates  []placement.Candidate `json:"candidates"`
	Rejections  []Rejection           `json:"rejections"`
	Explanation string                `json:"explanation"`
}

// Rejection is one placement filter's verdict in a plan.
type Rejection struct {
	Filter string   `json:"filter"`
	Count  int      `json:"count"`
	Nodes  []string `json:"nodes"`
	Reason string   `json:"reason"`
}

// Handler returns the API's HTTP handler.
func Handler(c Cluster, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &api{c: c, log: log}
	mux := http.NewServeMux()
	route := func(path string, methods map[string]http.HandlerFunc) {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			h, ok := methods[r.Method]
			if !ok {
				allowed := make([]string, 0, len(methods))
				for m := range methods {
					allowed = append(allowed, m)
				}
				slices.Sort(allowed)
				w.Header().Set("Allow", strings.Join(allowed, ", "))
				a.fail(w, http.StatusMethodNotAllowed, "method_not_allowed",
					fmt.Sprintf("%s is not allowed on %s; use %s", r.Method, r.URL.Path, strings.Join(allowed, " or ")))
				return
			}
			h(w, r)
		})
	}
	route("/v1/health", map[string]http.HandlerFunc{"GET": a.health})
	route("/v1/openapi.json", map[string]http.HandlerFunc{"GET": a.openapi})
	route("/v1/nodes", map[string]http.HandlerFunc{"GET": a.listNodes})
	route("/v1/nodes/{name}", map[string]http.HandlerFunc{"GET": a.getNode})
	route("/v1/nodes/{name}/drain", map[string]http.HandlerFunc{"POST": a.nodeChange(a.c.DrainNode)})
	route("/v1/nodes/{name}/undrain", map[string]http.HandlerFunc{"POST": a.nodeChange(a.c.UndrainNode)})
	route("/v1/rebalance/plan", map[string]http.HandlerFunc{"GET": a.rebalancePlan})
	route("/v1/rebalance/events", map[string]http.HandlerFunc{"GET": a.rebalanceEvents})
	route("/v1/workloads", map[string]http.HandlerFunc{"GET": a.listWorkloads, "POST": a.createWorkload})
	route("/v1/workloads/{id}", map[string]http.HandlerFunc{"GET": a.getWorkload, "DELETE": a.deleteWorkload})
	route("/v1/workloads/{id}/migrate", map[string]http.HandlerFunc{"POST": a.migrate})
	route("/v1/migrations", map[string]http.HandlerFunc{"GET": a.listMigrations})
	route("/v1/migrations/{id}", map[string]http.HandlerFunc{"GET": a.getMigration})
	route("/v1/plan", map[string]http.HandlerFunc{"POST": a.plan})
	route("/v1/groups", map[string]http.HandlerFunc{"GET": a.listGroups, "POST": a.createGroup})
	route("/v1/groups/{name}", map[string]http.HandlerFunc{"GET": a.getGroup, "DELETE": a.deleteGroup})
	route("/v1/groups/{name}/move", map[string]http.HandlerFunc{"POST": a.moveGroup})
	route("/v1/groups/{name}/reset", map[string]http.HandlerFunc{"POST": a.resetGroup})
	route("/v1/nodes/{name}/fence", map[string]http.HandlerFunc{"POST": a.fenceNode})
	route("/v1/nodes/{name}/votes", map[string]http.HandlerFunc{"PUT": a.setVotes})
	route("/v1/quorum", map[string]http.HandlerFunc{"GET": a.quorum})
	route("/v1/events", map[string]http.HandlerFunc{"GET": a.events})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		a.fail(w, http.StatusNotFound, "not_found", fmt.Sprintf("no such endpoint %s %s; see GET /v1/openapi.json", r.Method, r.URL.Path))
	})
	return mux
}

type api struct {
	c   Cluster
	log *slog.Logger
}

func (a *api) health(w http.ResponseWriter, _ *http.Request) {
	leader, epoch, holder := a.c.Leadership()
	a.reply(w, http.StatusOK, Health{Status: "ok", Leader: leader, Epoch: epoch, LeaderName: holder,
		Nodes: len(a.c.Nodes()), Workloads: len(a.c.Workloads())})
}

func (a *api) openapi(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(OpenAPI)
}

func (a *api) listNodes(w http.ResponseWriter, _ *http.Request) {
	a.reply(w, http.StatusOK, map[string]any{"nodes": a.c.Nodes()})
}

func (a *api) getNode(w http.ResponseWriter, r *http.Request) {
	n, err := a.c.Node(r.PathValue("name"))
	if err != nil {
		a.error(w, err)
		return
	}
	a.reply(w, http.StatusOK, n)
}

// nodeChange serves an operator's action on a node (drain, undrain).
func (a *api) nodeChange(change func(ctx context.Context, name string) (scheduler.NodeView, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n, err := change(r.Context(), r.PathValue("name"))
		if err != nil {
			a.error(w, err)
			return
		}
		a.reply(w, http.StatusOK, n)
	}
}

func (a *api) rebalancePlan(w http.ResponseWriter, _ *http.Request) {
	a.reply(w, http.StatusOK, a.c.PlanRebalance())
}

func (a *api) rebalanceEvents(w http.ResponseWriter, _ *http.Request) {
	ev := a.c.RebalanceEvents()
	if ev == nil {
		ev = []scheduler.RebalanceEvent{}
	}
	a.reply(w, http.StatusOK, map[string]any{"events": ev})
}

func (a *api) listWorkloads(w http.ResponseWriter, _ *http.Request) {
	a.reply(w, http.StatusOK, map[string]any{"workloads": a.c.Workloads()})
}

func (a *api) getWorkload(w http.ResponseWriter, r *http.Request) {
	wl, err := a.c.Workload(r.PathValue("id"))
	if err != nil {
		a.error(w, err)
		return
	}
	a.reply(w, http.StatusOK, wl)
}

func (a *api) createWorkload(w http.ResponseWriter, r *http.Request) {
	req, err := DecodeWorkloadRequest(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		a.error(w, err)
		return
	}
	wl, err := a.c.CreateWorkload(r.Context(), req)
	if err != nil {
		a.error(w, err)
		return
	}
	w.Header().Set("Location", "/v1/workloads/"+wl.ID)
	a.reply(w, http.StatusCreated, wl)
}

func (a *api) deleteWorkload(w http.ResponseWriter, r *http.Request) {
	wl, done, err := a.c.DeleteWorkload(r.Context(), r.PathValue("id"))
	if err != nil {
		a.error(w, err)
		return
	}
	status := http.StatusOK
	if !done {
		status = http.StatusAccepted // the node will stop it when it reports next
	}
	a.reply(w, status, wl)
}

func (a *api) migrate(w http.ResponseWriter, r *http.Request) {
	var req scheduler.MigrationRequest
	if err := decodeStrict(http.MaxBytesReader(w, r.Body, maxBody), &req, true); err != nil {
		a.error(w, err)
		return
	}
	m, err := a.c.StartMigration(r.Context(), r.PathValue("id"), req)
	if err != nil {
		a.error(w, err)
		return
	}
	w.Header().Set("Location", "/v1/migrations/"+m.ID)
	a.reply(w, http.StatusAccepted, m)
}

func (a *api) listMigrations(w http.ResponseWriter, _ *http.Request) {
	a.reply(w, http.StatusOK, map[string]any{"migrations": a.c.Migrations()})
}

func (a *api) getMigration(w http.ResponseWriter, r *http.Request) {
	m, err := a.c.Migration(r.PathValue("id"))
	if err != nil {
		a.error(w, err)
		return
	}
	a.reply(w, http.StatusOK, m)
}

func (a *api) plan(w http.ResponseWriter, r *http.Request) {
	req, err := DecodeWorkloadRequest(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		a.error(w, err)
		return
	}
	dec, err := a.c.Plan(req)
	if err != nil && !errors.Is(err, placement.ErrNoFit) {
		a.error(w, err)
		return
	}
	res := PlanResult{
		Fits: err == nil, Node: dec.Node, Strategy: string(dec.Strategy),
		Candidates: dec.Candidates, Rejections: []Rejection{}, Explanation: dec.Explain(),
	}
	if res.Candidates == nil {
		res.Candidates = []placement.Candidate{}
	}
	for _, rj := range dec.Rejections {
		res.Rejections = append(res.Rejections, Rejection{Filter: rj.Filter, Count: rj.Count, Nodes: rj.Nodes, Reason: rj.Reason})
	}
	a.reply(w, http.StatusOK, res)
}

func (a *api) listGroups(w http.ResponseWriter, _ *http.Request) {
	gs, err := a.c.Groups()
	if err != nil {
		a.error(w, err)
		return
	}
	a.reply(w, http.StatusOK, map[string]any{"groups": gs})
}

func (a *api) createGroup(w http.ResponseWriter, r *http.Request) {
	var req scheduler.GroupRequest
	if err := decodeStrict(http.MaxBytesReader(w, r.Body, maxBody), &req, false); err != nil {
		a.error(w, err)
		return
	}
	g, err := a.c.CreateGroup(r.Context(), req)
	if err != nil {
		a.error(w, err)
		return
	}
	w.Header().Set("Location", "/v1/groups/"+g.Name)
	a.reply(w, http.StatusCreated, g)
}

func (a *api) getGroup(w http.ResponseWriter, r *http.Request) {
	g, err := a.c.Group(r.PathValue("name"))
	if err != nil {
		a.error(w, err)
		return
	}
	a.reply(w, http.StatusOK, g)
}

func (a *api) deleteGroup(w http.ResponseWriter, r *http.Request) {
	g, err := a.c.DeleteGroup(r.Context(), r.PathValue("name"))
	if err != nil {
		a.error(w, err)
		return
	}
	a.reply(w, http.StatusAccepted, g)
}

func (a *api) moveGroup(w http.ResponseWriter, r *http.Request) {
	var req NodeRequest
	if err := decodeStrict(http.MaxBytesReader(w, r.Body, maxBody), &req, true); err != nil {
		a.error(w, err)
		return
	}
	g, err := a.c.MoveGroup(r.Context(), r.PathValue("name"), req.Node)
	if err != nil {
		a.error(w, err)
		return
	}
	a.reply(w, http.StatusAccepted, g)
}

func (a *api) resetGroup(w http.ResponseWriter, r *http.Request) {
	var req NodeRequest
	if err := decodeStrict(http.MaxBytesReader(w, r.Body, maxBody), &req, true); err != nil {
		a.error(w, err)
		return
	}
	g, err := a.c.ResetGroupFailures(r.Context(), r.PathValue("name"), req.Node)
	if err != nil {
		a.error(w, err)
		return
	}
	a.reply(w, http.StatusOK, g)
}

func (a *api) fenceNode(w http.ResponseWriter, r *http.Request) {
	var req FenceRequest
	if err := decodeStrict(http.MaxBytesReader(w, r.Body, maxBody), &req, true); err != nil {
		a.error(w, err)
		return
	}
	node := r.PathValue("name")
	if err := a.c.FenceNode(r.Context(), node, req.ConfirmOff); err != nil {
		a.error(w, err)
		return
	}
	msg := "fencing " + node + " through its fence levels; follow GET /v1/events"
	if req.ConfirmOff {
		msg = node + " recorded as off; its groups recover elsewhere"
	}
	a.reply(w, http.StatusAccepted, FenceAccepted{Node: node, Message: msg})
}

func (a *api) setVotes(w http.ResponseWriter, r *http.Request) {
	var req VotesRequest
	if err := decodeStrict(http.MaxBytesReader(w, r.Body, maxBody), &req, false); err != nil {
		a.error(w, err)
		return
	}
	if req.Votes == nil {
		a.error(w, fmt.Errorf(`%w: "votes" is required, e.g. {"votes":2}`, scheduler.ErrInvalid))
		return
	}
	q, err := a.c.SetVotes(r.Context(), r.PathValue("name"), *req.Votes)
	if err != nil {
		a.error(w, err)
		return
	}
	a.reply(w, http.StatusOK, q)
}

func (a *api) quorum(w http.ResponseWriter, _ *http.Request) {
	q, err := a.c.Quorum()
	if err != nil {
		a.error(w, err)
		return
	}
	a.reply(w, http.StatusOK, q)
}

func (a *api) events(w http.ResponseWriter, r *http.Request) {
	var since time.Time
	if v := r.URL.Query().Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			a.error(w, fmt.Errorf("%w: since %q is not an RFC 3339 time like 2026-01-02T15:04:05Z", scheduler.ErrInvalid, v))
			return
		}
		since = t
	}
	a.reply(w, http.StatusOK, map[string]any{"events": a.c.Events(since)})
}

// DecodeWorkloadRequest reads one JSON workload request, rejecting unknown
// fields and trailing data. Errors wrap scheduler.ErrInvalid.
func DecodeWorkloadRequest(body io.Reader) (scheduler.WorkloadRequest, error) {
	var req scheduler.WorkloadRequest
	if err := decodeStrict(body, &req, false); err != nil {
		return scheduler.WorkloadRequest{}, err
	}
	return req, nil
}

// decodeStrict reads one JSON object into v, rejecting unknown fields and
// trailing data; an empty body is allowed (v stays zero) only if allowEmpty.
// Errors wrap scheduler.ErrInvalid.
func decodeStrict(body io.Reader, v any, allowEmpty bool) error {
	raw, err := io.ReadAll(body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return fmt.Errorf("%w: request body larger than %d bytes", scheduler.ErrInvalid, tooBig.Limit)
		}
		return fmt.Errorf("%w: reading request body: %v", scheduler.ErrInvalid, err)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		if allowEmpty {
			return nil
		}
		return fmt.Errorf("%w: request body is empty: send a JSON workload, e.g. {\"name\":\"web\",\"command\":[\"/bin/sleep\",\"1000\"]}", scheduler.ErrInvalid)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: malformed JSON body: %v", scheduler.ErrInvalid, err)
	}
	// Anything but JSON white space after the object is an error. dec.More
	// is not enough: it answers false for a stray '}' or ']'.
	if rest := bytes.TrimLeft(raw[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return fmt.Errorf("%w: malformed JSON body: data after the object", scheduler.ErrInvalid)
	}
	return nil
}

func (a *api) reply(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(body); err != nil {
		a.log.Debug("writing response", "err", err)
	}
}

func (a *api) fail(w http.ResponseWriter, status int, code, msg string) {
	a.reply(w, status, Error{Error: ErrorDetail{Code: code, Message: msg}})
}

// error maps a scheduler error to a status and code.
func (a *api) error(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, scheduler.ErrInvalid), errors.Is(err, placement.ErrInvalidRequest):
		// placement rejects some requests that scheduler's Validate lets
		// through (an empty label key or anti-affinity name): still the
		// client's mistake, not an internal error.
		a.fail(w, http.StatusBadRequest, "invalid_request", err.Error())
	case errors.Is(err, scheduler.ErrNotFound):
		a.fail(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, scheduler.ErrConflict):
		a.fail(w, http.StatusConflict, "conflict", err.Error())
	case errors.Is(err, placement.ErrNoFit), errors.Is(err, scheduler.ErrUnsupported):
		a.fail(w, http.StatusUnprocessableEntity, "no_fit", err.Error())
	case errors.Is(err, scheduler.ErrNotLeader):
		a.fail(w, http.StatusServiceUnavailable, "not_leader", err.Error())
	case errors.Is(err, scheduler.ErrAgent):
		a.fail(w, http.StatusBadGateway, "agent_error", err.Error())
	default:
		a.log.Error("request failed", "err", err)
		a.fail(w, http.StatusInternalServerError, "internal", err.Error())
	}
}

package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batonhq/baton/scheduler"
	"github.com/batonhq/baton/scheduler/httpapi"
	"github.com/batonhq/baton/scheduler/store"
	"github.com/batonhq/baton/wire"
)

// TestMain ends with a leak check: the scheduler starts goroutines to carry
// out reconcile actions, and none may outlive the tests.
func TestMain(m *testing.M) {
	flag.Parse()
	before := runtime.NumGoroutine()
	code := m.Run()
	fuzzing := flag.Lookup("test.fuzz").Value.String() != "" || flag.Lookup("test.fuzzworker").Value.String() == "true"
	if code == 0 && !fuzzing {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			fmt.Fprintf(os.Stderr, "leak check: %d goroutines at the start, %d at the end:\n%s\n", before, n, buf)
			code = 1
		}
	}
	os.Exit(code)
}

// ---- harness ----------------------------------------------------------------

// epoch is the harness clock's fixed time.
var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }

// failingStore is the memory store with a switch that makes Put fail.
type failingStore struct {
	*store.Memory
	failPuts atomic.Bool
}

func (s *failingStore) Put(ctx context.Context, w store.Workload) error {
	if s.failPuts.Load() {
		return errors.New("store: disk full")
	}
	return s.Memory.Put(ctx, w)
}

type startCall struct {
	Node string
	Spec wire.WorkloadSpec
}

type stopCall struct{ Node, ID string }

// agentTwin is an in-memory scheduler.AgentClient. It records every command,
// starts workloads by handing out pids, refuses programs listed in refuse
// with an error wrapping scheduler.ErrAgent, and lets start commands to the
// nodes in silent and stop commands to the nodes in mute time out.
// (scheduler.MemoryAgents can neither time out nor refuse one program only.)
type agentTwin struct {
	mu      sync.Mutex
	pid     int
	starts  []startCall
	stops   []stopCall
	running map[string]wire.WorkloadSpec
	refuse  map[string]string // program → the agent's reason
	mute    map[string]bool   // node → stop commands to it time out
	silent  map[string]bool   // node → start commands to it time out
}

func newAgentTwin() *agentTwin {
	return &agentTwin{pid: 4000, running: map[string]wire.WorkloadSpec{}, refuse: map[string]string{}, mute: map[string]bool{}, silent: map[string]bool{}}
}

func (a *agentTwin) Start(_ context.Context, node string, spec wire.WorkloadSpec) (wire.WorkloadStatus, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.starts = append(a.starts, startCall{Node: node, Spec: spec})
	if reason, ok := a.refuse[spec.Command[0]]; ok {
		return wire.WorkloadStatus{}, fmt.Errorf("%w: node %s: starting %q: %s", scheduler.ErrAgent, node, spec.Command[0], reason)
	}
	if a.silent[node] {
		return wire.WorkloadStatus{}, fmt.Errorf("start command to node %s: %w (is its agent running?)", node, context.DeadlineExceeded)
	}
	a.pid++
	a.running[spec.ID] = spec
	return wire.WorkloadStatus{
		ID: spec.ID, Name: spec.Name, State: wire.StateRunning, HostPID: a.pid,
		StartedAt: epoch, Resources: spec.Resources,
	}, nil
}

func (a *agentTwin) Stop(_ context.Context, node, id string) (wire.WorkloadStatus, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stops = append(a.stops, stopCall{Node: node, ID: id})
	if a.mute[node] {
		return wire.WorkloadStatus{}, fmt.Errorf("stop command to node %s: %w (is its agent running?)", node, context.DeadlineExceeded)
	}
	spec := a.running[id]
	delete(a.running, id)
	return wire.WorkloadStatus{ID: id, Name: spec.Name, State: wire.StateStopped, Resources: spec.Resources}, nil
}

// Migrate answers every migration operation with success, as agents with
// CRIU would: a page server on prepare, a pid on restore.
func (a *agentTwin) Migrate(_ context.Context, node, op string, cmd wire.MigrationCmd) (wire.MigrationReply, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch op {
	case wire.OpMigratePrepare:
		return wire.MigrationReply{PageServer: "127.0.0.1:1"}, nil
	case wire.OpMigrateDump:
		return wire.MigrationReply{Bytes: 4096, FrozenAt: epoch}, nil
	case wire.OpMigrateRestore:
		a.pid++
		return wire.MigrationReply{PID: a.pid}, nil
	}
	return wire.MigrationReply{}, nil
}

func (a *agentTwin) setSilent(node string, on bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.silent[node] = on
}

// status is what the twin's node reports for a workload it runs, as a
// heartbeat would.
func (a *agentTwin) status(id string) (wire.WorkloadStatus, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	spec, ok := a.running[id]
	if !ok {
		return wire.WorkloadStatus{}, false
	}
	return wire.WorkloadStatus{ID: id, Name: spec.Name, State: wire.StateRunning, HostPID: a.pid, Resources: spec.Resources}, true
}

func (a *agentTwin) Starts() []startCall {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.starts)
}

func (a *agentTwin) Stops() []stopCall {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.stops)
}

func (a *agentTwin) Running() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.running)
}

// nodeSpec is a node the harness makes heartbeat.
type nodeSpec struct {
	name      string
	cpuMillis int64
	memoryMB  int64
	labels    map[string]string
}

// twoNodes is the usual cluster: n1 is twice the size of n2.
var twoNodes = []nodeSpec{
	{name: "n1", cpuMillis: 4000, memoryMB: 8192, labels: map[string]string{"zone": "a"}},
	{name: "n2", cpuMillis: 2000, memoryMB: 4096, labels: map[string]string{"zone": "b"}},
}

// harness is the real API handler on a real scheduler.Server backed by the
// memory store and the agent twin.
type harness struct {
	t      testing.TB
	srv    *scheduler.Server
	store  *failingStore
	agents *agentTwin
	h      http.Handler
	nodes  map[string]nodeSpec
	seq    uint64
}

// newHarness starts a scheduler whose nodes have each sent two heartbeats,
// so that they are running.
func newHarness(t testing.TB, nodes ...nodeSpec) *harness {
	t.Helper()
	h := &harness{t: t, store: &failingStore{Memory: store.NewMemory()}, agents: newAgentTwin(), nodes: map[string]nodeSpec{}}
	h.srv = scheduler.New(scheduler.Config{Store: h.store, Agents: h.agents, Clock: fixedClock{epoch}})
	if err := h.srv.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	h.h = httpapi.Handler(h.srv, nil)
	for _, n := range nodes {
		h.nodes[n.name] = n
		h.heartbeat(n.name)
		h.heartbeat(n.name)
	}
	for _, n := range h.srv.Nodes() {
		if n.State != "running" {
			t.Fatalf("harness: node %s is %s after two heartbeats, want running", n.Name, n.State)
		}
	}
	return h
}

// heartbeat sends one heartbeat from a node of the harness reporting the
// given workloads.
func (h *harness) heartbeat(node string, workloads ...wire.WorkloadStatus) {
	n, ok := h.nodes[node]
	if !ok {
		h.t.Fatalf("harness: unknown node %s", node)
	}
	h.seq++
	h.srv.HandleHeartbeat(context.Background(), wire.Heartbeat{
		V: wire.Version, Node: n.name, Seq: h.seq, SentAt: epoch, IntervalMS: 1000, Labels: n.labels,
		Capacity:  wire.Capacity{CPUs: int(n.cpuMillis / 1000), CPUMillis: n.cpuMillis, MemoryMB: n.memoryMB, DiskMB: 100_000},
		Headroom:  wire.Headroom{CPUMillis: n.cpuMillis, MemoryMB: n.memoryMB, DiskMB: 90_000, CPUPercent: 2.5, Load1: 0.1, Load5: 0.2, Load15: 0.3},
		Workloads: workloads,
		Features:  &wire.NodeFeatures{CRIU: true, LazyPages: true, UFFD: true},
	})
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (h *harness) do(method, path, body string) response {
	var r *http.Request
	if body == "" {
		r = httptest.NewRequest(method, path, nil)
	} else {
		r = httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	}
	w := httptest.NewRecorder()
	h.h.ServeHTTP(w, r)
	return response{status: w.Code, header: w.Header(), body: w.Body.Bytes()}
}

// decode reads the body strictly into v: a field the test type does not know
// is a failure.
func (r response) decode(t testing.TB, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decoding %T from %d response: %v\n%s", v, r.status, err, r.body)
	}
}

// wantError checks an error response: its status, JSON content type and
// {"error":{"code","message"}} body with the given code. It returns the message.
func (r response) wantError(t testing.TB, status int, code string) string {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body:\n%s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var e httpapi.Error
	r.decode(t, &e)
	if e.Error.Code != code {
		t.Errorf("error code %q, want %q (message %q)", e.Error.Code, code, e.Error.Message)
	}
	if e.Error.Message == "" {
		t.Errorf("error without message")
	}
	return e.Error.Message
}

// wantStatus fails unless the response has the status.
func (r response) wantStatus(t testing.TB, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body:\n%s", r.status, status, r.body)
	}
}

// workloads lists the workloads through the API.
func (h *harness) workloads(t testing.TB) []store.Workload {
	t.Helper()
	resp := h.do("GET", "/v1/workloads", "")
	resp.wantStatus(t, http.StatusOK)
	var list struct {
		Workloads []store.Workload `json:"workloads"`
	}
	resp.decode(t, &list)
	return list.Workloads
}

// wantNothingCreated checks that no workload exists, in the API or in the
// store, and that no agent was asked to start one.
func (h *harness) wantNothingCreated(t testing.TB) {
	t.Helper()
	if list := h.workloads(t); len(list) != 0 {
		t.Errorf("the API lists %d workloads, want none: %+v", len(list), list)
	}
	if recs, _ := h.store.List(context.Background()); len(recs) != 0 {
		t.Errorf("the store holds %d records, want none: %+v", len(recs), recs)
	}
	if starts := h.agents.Starts(); len(starts) != 0 {
		t.Errorf("the agents were asked for %d starts, want none: %+v", len(starts), starts)
	}
}

// create posts a workload and requires 201.
func (h *harness) create(t testing.TB, body string) store.Workload {
	t.Helper()
	resp := h.do("POST", "/v1/workloads", body)
	resp.wantStatus(t, http.StatusCreated)
	var w store.Workload
	resp.decode(t, &w)
	return w
}

// ---- bad input ----------------------------------------------------------------

const validBody = `{"name":"web","command":["/bin/sleep","1000"],"resources":{"cpu_millis":500,"memory_mb":256}}`

func TestBadWorkloadRequests(t *testing.T) {
	manyArgs := `{"name":"web","command":["/bin/echo"` + strings.Repeat(`,"x"`, 4096) + `]}`
	tooBig := `{"name":"web","command":["/bin/echo","` + strings.Repeat("a", 1<<20) + `"]}`
	cases := []struct {
		name    string
		body    string
		wantMsg string // the message must contain this
	}{
		{"malformed JSON", `{"name":"web",`, "malformed JSON body"},
		{"not JSON", `name=web&command=/bin/true`, "malformed JSON body"},
		{"array instead of object", `["web"]`, "cannot unmarshal array"},
		{"wrong type for name", `{"name":7,"command":["/bin/true"]}`, ".name of type string"},
		{"empty body", ``, "request body is empty"},
		{"blank body", " \n\t ", "request body is empty"},
		{"null body", `null`, `"name" is required`},
		{"unknown field", `{"name":"web","command":["/bin/true"],"replicas":3}`, `unknown field "replicas"`},
		{"unknown field in resources", `{"name":"web","command":["/bin/true"],"resources":{"cpus":2}}`, `unknown field "cpus"`},
		{"unknown field in constraints", `{"name":"web","command":["/bin/true"],"constraints":{"node":"n1"}}`, `unknown field "node"`},
		{"second object after the workload", validBody + validBody, "data after the object"},
		{"garbage after the workload", validBody + " x", "data after the object"},
		{"closing brace after the workload", validBody + "}", "data after the object"},
		{"closing bracket after the workload", validBody + "]", "data after the object"},
		{"negative cpu", `{"name":"web","command":["/bin/true"],"resources":{"cpu_millis":-1}}`, "resources must not be negative (cpu_millis -1"},
		{"negative memory", `{"name":"web","command":["/bin/true"],"resources":{"memory_mb":-5}}`, "resources must not be negative (cpu_millis 0, memory_mb -5)"},
		{"absurd cpu", `{"name":"web","command":["/bin/true"],"resources":{"cpu_millis":1000000000}}`, "cpu_millis 1000000000 is absurd"},
		{"absurd memory", `{"name":"web","command":["/bin/true"],"resources":{"memory_mb":1000000000000}}`, "memory_mb 1000000000000 is absurd"},
		{"cpu in exponent notation", `{"name":"web","command":["/bin/true"],"resources":{"cpu_millis":1e9}}`, "cpu_millis"},
		{"memory beyond int64", `{"name":"web","command":["/bin/true"],"resources":{"memory_mb":100000000000000000000}}`, "memory_mb"},
		{"missing command", `{"name":"web"}`, `"command" is empty`},
		{"empty command", `{"name":"web","command":[]}`, `"command" is empty`},
		{"command with empty program", `{"name":"web","command":["","-x"]}`, `"command" is empty`},
		{"NUL in an argument", `{"name":"web","command":["/bin/echo","a\u0000b"]}`, "command argument 1 contains a NUL byte"},
		{"too many arguments", manyArgs, "command has 4097 arguments, at most 4096 allowed"},
		{"missing name", `{"command":["/bin/true"]}`, `"name" is required`},
		{"name with a space", `{"name":"web server","command":["/bin/true"]}`, `name "web server" is invalid`},
		{"name with a slash", `{"name":"../etc","command":["/bin/true"]}`, `name "../etc" is invalid`},
		{"name too long", `{"name":"` + strings.Repeat("a", 64) + `","command":["/bin/true"]}`, "is invalid: use 1-63 letters"},
		{"unknown kind", `{"name":"web","kind":"container","command":["/bin/true"]}`, `kind "container" is not supported`},
		{"unknown strategy", `{"name":"web","command":["/bin/true"],"strategy":"random"}`, `strategy "random" is unknown`},
		{"relative workdir", `{"name":"web","command":["/bin/true"],"workdir":"srv/app"}`, `workdir "srv/app" must be an absolute path`},
		{"env name with =", `{"name":"web","command":["/bin/true"],"env":{"A=B":"c"}}`, `environment variable "A=B" is invalid`},
		{"constraint node with a dot", `{"name":"web","command":["/bin/true"],"constraints":{"nodes":["n1.example"]}}`, `node name "n1.example" is invalid`},
		{"avoided node is a wildcard", `{"name":"web","command":["/bin/true"],"constraints":{"avoid_nodes":["*"]}}`, `node name "*" is invalid`},
		{"empty label key", `{"name":"web","command":["/bin/true"],"constraints":{"labels":{"":"a"}}}`, "label name is empty"},
		{"empty anti-affinity name", `{"name":"web","command":["/bin/true"],"constraints":{"anti_affinity":[""]}}`, "empty workload name"},
		{"body over 1 MiB", tooBig, "request body larger than 1048576 bytes"},
	}
	for _, path := range []string{"/v1/workloads", "/v1/plan"} {
		t.Run(path, func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					h := newHarness(t, twoNodes...)
					msg := h.do("POST", path, tc.body).wantError(t, http.StatusBadRequest, "invalid_request")
					if !strings.Contains(msg, tc.wantMsg) {
						t.Errorf("message %q does not contain %q", msg, tc.wantMsg)
					}
					h.wantNothingCreated(t)
				})
			}
		})
	}
}

// ---- errors on known routes ---------------------------------------------------

func TestUnknownIDs(t *testing.T) {
	cases := []struct {
		name, method, path, wantMsg string
	}{
		{"get workload", "GET", "/v1/workloads/w-000000000000", `workload "w-000000000000"`},
		{"delete workload", "DELETE", "/v1/workloads/w-000000000000", `workload "w-000000000000"`},
		{"get node", "GET", "/v1/nodes/n9", `node "n9"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, twoNodes...)
			keep := h.create(t, validBody)
			msg := h.do(tc.method, tc.path, "").wantError(t, http.StatusNotFound, "not_found")
			if !strings.Contains(msg, tc.wantMsg) {
				t.Errorf("message %q does not contain %q", msg, tc.wantMsg)
			}
			if stops := h.agents.Stops(); len(stops) != 0 {
				t.Errorf("agents saw stops %+v, want none", stops)
			}
			if list := h.workloads(t); len(list) != 1 || list[0].ID != keep.ID {
				t.Errorf("workloads %+v, want only %s", list, keep.ID)
			}
		})
	}
}

func TestCreateDuplicateName(t *testing.T) {
	h := newHarness(t, twoNodes...)
	first := h.create(t, validBody)
	msg := h.do("POST", "/v1/workloads", `{"name":"web","command":["/bin/other"]}`).wantError(t, http.StatusConflict, "conflict")
	for _, want := range []string{`"web"`, first.ID, "delete it first"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not contain %q", msg, want)
		}
	}
	if list := h.workloads(t); len(list) != 1 || list[0].ID != first.ID {
		t.Errorf("workloads %+v, want only %s", list, first.ID)
	}
	if starts := h.agents.Starts(); len(starts) != 1 {
		t.Errorf("agents saw %d starts, want 1: %+v", len(starts), starts)
	}
	// Once the first is deleted, the name is free again.
	h.do("DELETE", "/v1/workloads/"+first.ID, "").wantStatus(t, http.StatusOK)
	if again := h.create(t, validBody); again.ID == first.ID {
		t.Errorf("the new workload reused id %s", again.ID)
	}
}

func TestCreateNoFit(t *testing.T) {
	cases := []struct {
		name    string
		nodes   []nodeSpec
		joining []nodeSpec // nodes that send a single heartbeat
		body    string
		wantMsg string
	}{
		{
			name:    "more memory than any node has",
			nodes:   twoNodes,
			body:    `{"name":"big","command":["/bin/true"],"resources":{"memory_mb":1048576}}`,
			wantMsg: `workload "big": no node fits: 2 nodes lack memory (need 1 TiB, best has 8 GiB free)`,
		},
		{
			name:    "more CPU than any node has",
			nodes:   twoNodes,
			body:    `{"name":"big","command":["/bin/true"],"resources":{"cpu_millis":64000}}`,
			wantMsg: "2 nodes lack CPU (need 64 CPU, best has 4 CPU free)",
		},
		{
			name:    "label no node has",
			nodes:   twoNodes,
			body:    `{"name":"web","command":["/bin/true"],"constraints":{"labels":{"zone":"mars"}}}`,
			wantMsg: "2 nodes do not have label zone=mars",
		},
		{
			name:    "every node avoided",
			nodes:   twoNodes,
			body:    `{"name":"web","command":["/bin/true"],"constraints":{"avoid_nodes":["n1","n2"]}}`,
			wantMsg: "2 nodes are in the workload's avoid list",
		},
		{
			name:    "only node still joining",
			joining: []nodeSpec{{name: "n3", cpuMillis: 8000, memoryMB: 16384}},
			body:    validBody,
			wantMsg: "1 node is joining",
		},
		{
			name:    "no nodes",
			body:    validBody,
			wantMsg: "no nodes in the cluster",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.nodes...)
			for _, n := range tc.joining {
				h.nodes[n.name] = n
				h.heartbeat(n.name)
			}
			msg := h.do("POST", "/v1/workloads", tc.body).wantError(t, http.StatusUnprocessableEntity, "no_fit")
			if !strings.Contains(msg, tc.wantMsg) {
				t.Errorf("message %q does not contain %q", msg, tc.wantMsg)
			}
			h.wantNothingCreated(t)

			// The dry run agrees.
			resp := h.do("POST", "/v1/plan", tc.body)
			resp.wantStatus(t, http.StatusOK)
			var plan httpapi.PlanResult
			resp.decode(t, &plan)
			if plan.Fits || plan.Node != "" || len(plan.Candidates) != 0 {
				t.Errorf("plan %+v, want no fit, no node, no candidates", plan)
			}
			if !strings.Contains(msg, plan.Explanation) {
				t.Errorf("plan explanation %q is not the reason given by create (%q)", plan.Explanation, msg)
			}
		})
	}
}

func TestCreateAgentRefuses(t *testing.T) {
	h := newHarness(t, twoNodes...)
	h.agents.refuse["/no/such/program"] = "exec: no such file or directory"
	msg := h.do("POST", "/v1/workloads", `{"name":"web","command":["/no/such/program"],"resources":{"memory_mb":512}}`).
		wantError(t, http.StatusBadGateway, "agent_error")
	starts := h.agents.Starts()
	if len(starts) != 1 {
		t.Fatalf("agents saw %d starts, want 1", len(starts))
	}
	for _, want := range []string{`workload "web"`, "node " + starts[0].Node, "/no/such/program", "no such file or directory"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not contain %q", msg, want)
		}
	}
	if list := h.workloads(t); len(list) != 0 {
		t.Errorf("the refused workload was kept: %+v", list)
	}
	if recs, _ := h.store.List(context.Background()); len(recs) != 0 {
		t.Errorf("the store kept the refused workload: %+v", recs)
	}
	// Its reservation was released too.
	for _, n := range h.srv.Nodes() {
		if n.Workloads != 0 || n.Reserved != (wire.Resources{}) {
			t.Errorf("node %s still reserves %+v for %d workloads", n.Name, n.Reserved, n.Workloads)
		}
	}
}

func TestCreateStoreFails(t *testing.T) {
	h := newHarness(t, twoNodes...)
	h.store.failPuts.Store(true)
	msg := h.do("POST", "/v1/workloads", validBody).wantError(t, http.StatusInternalServerError, "internal")
	if !strings.Contains(msg, "disk full") {
		t.Errorf("message %q does not give the store's reason", msg)
	}
	h.wantNothingCreated(t)
}

// ---- happy paths ----------------------------------------------------------------

var workloadIDRE = regexp.MustCompile(`^w-[0-9a-f]{12}$`)

func TestWorkloadLifecycle(t *testing.T) {
	h := newHarness(t, twoNodes...)
	body := `{"name":"web","command":["/usr/bin/python3","-m","http.server"],"env":{"PORT":"8080"},"workdir":"/srv",
		"resources":{"cpu_millis":1000,"memory_mb":1024}}`

	var plan httpapi.PlanResult
	resp := h.do("POST", "/v1/plan", body)
	resp.wantStatus(t, http.StatusOK)
	resp.decode(t, &plan)
	if !plan.Fits || plan.Node == "" {
		t.Fatalf("plan %+v, want a fit", plan)
	}
	if len(h.agents.Starts()) != 0 {
		t.Fatalf("plan started something")
	}

	// Create: placed where the plan said, started, confirmed.
	resp = h.do("POST", "/v1/workloads", body)
	resp.wantStatus(t, http.StatusCreated)
	var w store.Workload
	resp.decode(t, &w)
	if !workloadIDRE.MatchString(w.ID) {
		t.Errorf("id %q does not look like w-<12 hex>", w.ID)
	}
	if loc := resp.header.Get("Location"); loc != "/v1/workloads/"+w.ID {
		t.Errorf("Location %q, want /v1/workloads/%s", loc, w.ID)
	}
	starts := h.agents.Starts()
	if len(starts) != 1 {
		t.Fatalf("agents saw %d starts, want 1", len(starts))
	}
	want := store.Workload{
		ID: w.ID, Name: "web", Kind: "process", Command: []string{"/usr/bin/python3", "-m", "http.server"},
		Env: map[string]string{"PORT": "8080"}, Workdir: "/srv", Resources: wire.Resources{CPUMillis: 1000, MemoryMB: 1024},
		Strategy: "binpack", Desired: "running", Node: plan.Node, State: "running", HostPID: 4001,
		CreatedAt: epoch, UpdatedAt: epoch,
	}
	if !equalJSON(t, w, want) {
		t.Errorf("created workload\n%+v\nwant\n%+v", w, want)
	}
	if got := starts[0]; got.Node != plan.Node || !equalJSON(t, got.Spec, want.Spec()) {
		t.Errorf("agent was asked to start %+v on %s, want %+v on %s", got.Spec, got.Node, want.Spec(), plan.Node)
	}

	// List and get show the same record.
	if list := h.workloads(t); len(list) != 1 || !equalJSON(t, list[0], want) {
		t.Errorf("list %+v, want [%+v]", list, want)
	}
	resp = h.do("GET", "/v1/workloads/"+w.ID, "")
	resp.wantStatus(t, http.StatusOK)
	var got store.Workload
	resp.decode(t, &got)
	if !equalJSON(t, got, want) {
		t.Errorf("get %+v, want %+v", got, want)
	}

	// The node reserves its resources.
	resp = h.do("GET", "/v1/nodes/"+plan.Node, "")
	resp.wantStatus(t, http.StatusOK)
	var node scheduler.NodeView
	resp.decode(t, &node)
	if node.Workloads != 1 || node.Reserved != want.Resources {
		t.Errorf("node %s reserves %+v for %d workloads, want %+v for 1", node.Name, node.Reserved, node.Workloads, want.Resources)
	}
	resp = h.do("GET", "/v1/health", "")
	resp.wantStatus(t, http.StatusOK)
	var health httpapi.Health
	resp.decode(t, &health)
	if health != (httpapi.Health{Status: "ok", Leader: true, Nodes: 2, Workloads: 1}) {
		t.Errorf("health %+v, want ok, leading, with 2 nodes and 1 workload", health)
	}

	// Delete: the node confirms, the record is gone.
	resp = h.do("DELETE", "/v1/workloads/"+w.ID, "")
	resp.wantStatus(t, http.StatusOK)
	var deleted store.Workload
	resp.decode(t, &deleted)
	if deleted.ID != w.ID || deleted.State != wire.StateStopped || deleted.Desired != store.DesiredDeleted {
		t.Errorf("delete answered %+v, want %s stopped, desired deleted", deleted, w.ID)
	}
	if stops := h.agents.Stops(); !slices.Equal(stops, []stopCall{{Node: plan.Node, ID: w.ID}}) {
		t.Errorf("agents saw stops %+v, want one of %s on %s", stops, w.ID, plan.Node)
	}
	if h.agents.Running() != 0 {
		t.Errorf("the agent still runs %d workloads", h.agents.Running())
	}
	if list := h.workloads(t); len(list) != 0 {
		t.Errorf("list after delete %+v, want empty", list)
	}
	h.do("GET", "/v1/workloads/"+w.ID, "").wantError(t, http.StatusNotFound, "not_found")
	h.do("DELETE", "/v1/workloads/"+w.ID, "").wantError(t, http.StatusNotFound, "not_found")
}

func TestCreateUnconfirmed(t *testing.T) {
	h := newHarness(t, twoNodes...)
	h.agents.setSilent("n2", true)
	w := h.create(t, `{"name":"web","command":["/bin/sleep","1000"],"constraints":{"nodes":["n2"]}}`)
	if w.State != wire.StateStarting || w.HostPID != 0 || !strings.Contains(w.Error, "deadline exceeded") {
		t.Errorf("created %+v, want state starting, no pid, and the timeout as error", w)
	}
	if list := h.workloads(t); len(list) != 1 || list[0].ID != w.ID {
		t.Fatalf("list %+v, want the workload kept", list)
	}

	// The node comes back and reports without the workload: reconciliation
	// starts it, in the background.
	h.agents.setSilent("n2", false)
	h.heartbeat("n2")
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp := h.do("GET", "/v1/workloads/"+w.ID, "")
		resp.wantStatus(t, http.StatusOK)
		var got store.Workload
		resp.decode(t, &got)
		if got.State == wire.StateRunning && got.HostPID != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("workload not running 10s after the node's heartbeat: %+v", got)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Its next report lists it running: nothing more is started.
	st, ok := h.agents.status(w.ID)
	if !ok {
		t.Fatalf("the agent does not run %s", w.ID)
	}
	h.heartbeat("n2", st)
	if n := len(h.agents.Starts()); n != 2 {
		t.Errorf("agents saw %d starts, want 2 (the timed-out one and the retry)", n)
	}
}

func TestDeleteUnconfirmed(t *testing.T) {
	h := newHarness(t, twoNodes...)
	w := h.create(t, `{"name":"web","command":["/bin/sleep","1000"],"constraints":{"nodes":["n2"]}}`)
	h.agents.mute["n2"] = true

	resp := h.do("DELETE", "/v1/workloads/"+w.ID, "")
	resp.wantStatus(t, http.StatusAccepted)
	var got store.Workload
	resp.decode(t, &got)
	if got.ID != w.ID || got.Desired != store.DesiredDeleted {
		t.Errorf("delete answered %+v, want %s with desired deleted", got, w.ID)
	}
	if stops := h.agents.Stops(); len(stops) != 1 {
		t.Errorf("agents saw %d stop attempts, want 1", len(stops))
	}
	list := h.workloads(t)
	if len(list) != 1 || list[0].Desired != store.DesiredDeleted {
		t.Fatalf("list %+v, want the workload kept with desired deleted", list)
	}

	// The node's next report no longer lists it: the record is forgotten.
	h.heartbeat("n2")
	if list := h.workloads(t); len(list) != 0 {
		t.Errorf("list after the node's report %+v, want empty", list)
	}
}

func TestPlan(t *testing.T) {
	cases := []struct {
		name            string
		body            string
		wantFits        bool
		wantNode        string
		wantStrategy    string
		wantCandidates  []string
		wantRejections  []httpapi.Rejection
		wantExplanation string
	}{
		{
			name:            "binpack prefers the fuller node",
			body:            `{"name":"web","command":["/bin/true"],"resources":{"cpu_millis":1000,"memory_mb":1024}}`,
			wantFits:        true,
			wantNode:        "n2",
			wantStrategy:    "binpack",
			wantCandidates:  []string{"n2", "n1"},
			wantRejections:  []httpapi.Rejection{},
			wantExplanation: "no node was rejected",
		},
		{
			name:            "spread prefers the emptier node",
			body:            `{"name":"web","command":["/bin/true"],"resources":{"cpu_millis":1000,"memory_mb":1024},"strategy":"spread"}`,
			wantFits:        true,
			wantNode:        "n1",
			wantStrategy:    "spread",
			wantCandidates:  []string{"n1", "n2"},
			wantRejections:  []httpapi.Rejection{},
			wantExplanation: "no node was rejected",
		},
		{
			name:           "one node too small",
			body:           `{"name":"web","command":["/bin/true"],"resources":{"memory_mb":6144}}`,
			wantFits:       true,
			wantNode:       "n1",
			wantStrategy:   "binpack",
			wantCandidates: []string{"n1"},
			wantRejections: []httpapi.Rejection{
				{Filter: "memory", Count: 1, Nodes: []string{"n2"}, Reason: "lacks memory (need 6 GiB, has 4 GiB free)"},
			},
			wantExplanation: "1 node lacks memory (need 6 GiB, has 4 GiB free)",
		},
		{
			name:           "fits nowhere",
			body:           `{"name":"web","command":["/bin/true"],"resources":{"memory_mb":1048576}}`,
			wantFits:       false,
			wantStrategy:   "binpack",
			wantCandidates: []string{},
			wantRejections: []httpapi.Rejection{
				{Filter: "memory", Count: 2, Nodes: []string{"n1", "n2"}, Reason: "lack memory (need 1 TiB, best has 8 GiB free)"},
			},
			wantExplanation: "2 nodes lack memory (need 1 TiB, best has 8 GiB free)",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, twoNodes...)
			resp := h.do("POST", "/v1/plan", tc.body)
			resp.wantStatus(t, http.StatusOK)
			var plan httpapi.PlanResult
			resp.decode(t, &plan)
			if plan.Fits != tc.wantFits || plan.Node != tc.wantNode || plan.Strategy != tc.wantStrategy {
				t.Errorf("fits %v node %q strategy %q, want %v %q %q", plan.Fits, plan.Node, plan.Strategy, tc.wantFits, tc.wantNode, tc.wantStrategy)
			}
			var names []string
			for _, c := range plan.Candidates {
				names = append(names, c.Node)
			}
			if !slices.Equal(names, tc.wantCandidates) {
				t.Errorf("candidates %v, want %v", names, tc.wantCandidates)
			}
			if !equalJSON(t, plan.Rejections, tc.wantRejections) {
				t.Errorf("rejections %+v, want %+v", plan.Rejections, tc.wantRejections)
			}
			if plan.Explanation != tc.wantExplanation {
				t.Errorf("explanation %q, want %q", plan.Explanation, tc.wantExplanation)
			}
			// Lists are [] rather than null, as documented.
			for _, field := range []string{`"candidates": null`, `"rejections": null`} {
				if bytes.Contains(resp.body, []byte(field)) {
					t.Errorf("body has %s:\n%s", field, resp.body)
				}
			}
			h.wantNothingCreated(t)
		})
	}
}

// equalJSON compares two values by their JSON encodings, which is what the
// API promises (a nil and an empty map encode alike when omitted).
func equalJSON(t testing.TB, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(ja, jb)
}

// ---- fuzz ---------------------------------------------------------------------

// FuzzDecodeWorkloadRequest feeds arbitrary bodies to the decoder and to
// POST /v1/plan. The decoder never panics and only fails with ErrInvalid; a
// request it accepts passes Validate or fails it with ErrInvalid, re-encodes
// to something it accepts again, and the plan endpoint answers it with 200 or
// 400, never a 5xx.
func FuzzDecodeWorkloadRequest(f *testing.F) {
	for _, s := range []string{
		validBody,
		`{"name":"web","kind":"process","command":["/bin/sh","-c","echo hi"],"env":{"A":"1"},"workdir":"/tmp",
		  "resources":{"cpu_millis":250,"memory_mb":128},"constraints":{"nodes":["n1"],"avoid_nodes":["n2"],
		  "labels":{"zone":"a"},"anti_affinity":["db"]},"strategy":"spread"}`,
		``, `null`, `{}`, `[]`, `"web"`, `{"name":"web"}`, validBody + validBody, validBody + "}",
		`{"name":"web","command":["/bin/true"],"constraints":{"labels":{"":"a"}}}`,
		`{"name":"web","command":["/bin/true"],"constraints":{"anti_affinity":[""]}}`,
		`{"name":"web","command":["/bin/true"],"resources":{"cpu_millis":-1}}`,
		`{"name":"web","command":["/bin/true"],"resources":{"memory_mb":1e12}}`,
		`{"NAME":"web","Command":["/bin/true"]}`,
		"{\"name\":\"w\xffeb\",\"command\":[\"/bin/true\"]}",
	} {
		f.Add([]byte(s))
	}
	h := newHarness(f, twoNodes...)
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := httpapi.DecodeWorkloadRequest(bytes.NewReader(body))
		if err != nil {
			if !errors.Is(err, scheduler.ErrInvalid) {
				t.Fatalf("decode error %v does not wrap ErrInvalid", err)
			}
			return
		}
		verr := req.Validate()
		if verr != nil && !errors.Is(verr, scheduler.ErrInvalid) {
			t.Fatalf("Validate error %v does not wrap ErrInvalid", verr)
		}
		enc, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("encoding an accepted request: %v", err)
		}
		again, err := httpapi.DecodeWorkloadRequest(bytes.NewReader(enc))
		if err != nil {
			t.Fatalf("the decoder rejects the encoding of a request it accepted: %v\n%s", err, enc)
		}
		if !equalJSON(t, again, req) {
			t.Fatalf("round trip changed the request:\n%s\n%s", enc, mustJSON(again))
		}
		resp := h.do("POST", "/v1/plan", string(body))
		switch {
		case verr != nil && resp.status != http.StatusBadRequest:
			t.Fatalf("plan of an invalid request (%v) answered %d:\n%s", verr, resp.status, resp.body)
		case resp.status != http.StatusOK && resp.status != http.StatusBadRequest:
			t.Fatalf("plan answered %d:\n%s", resp.status, resp.body)
		}
		if n := len(h.agents.Starts()); n != 0 {
			t.Fatalf("plan started %d workloads", n)
		}
	})
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

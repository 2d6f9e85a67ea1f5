package scheduler

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/batonhq/baton/failover/groups"
	"github.com/batonhq/baton/failover/membership"
	"github.com/batonhq/baton/migrate"
	"github.com/batonhq/baton/placement"
	"github.com/batonhq/baton/placement/rebalance"
	"github.com/batonhq/baton/scheduler/store"
	"github.com/batonhq/baton/wire"
)

// AgentClient sends commands to node agents. NATSAgents is the real one;
// tests use an in-memory twin.
type AgentClient interface {
	Start(ctx context.Context, node string, spec wire.WorkloadSpec) (wire.WorkloadStatus, error)
	Stop(ctx context.Context, node, id string) (wire.WorkloadStatus, error)
}

// Clock tells the time; injected so tests control it.
type Clock interface{ Now() time.Time }

// SystemClock is the real clock.
type SystemClock struct{}

// Now implements Clock.
func (SystemClock) Now() time.Time { return time.Now() }

// Config wires a Server.
type Config struct {
	Store           store.Store
	Agents          AgentClient
	Clock           Clock
	Logger          *slog.Logger
	Membership      membership.Config
	DefaultStrategy placement.Strategy // cluster default; BinPack if empty
	// CommandTimeout bounds one start or stop command to an agent.
	CommandTimeout time.Duration
	// AwaitLeadership makes the server start as a follower that acts only
	// once SetLeadership says it leads (several servers share a lease). By
	// default a server leads from the start, with epoch 0.
	AwaitLeadership bool
	// Name is this server's name, sent in its beacon while it leads.
	Name string
	// HA configures failover: resource groups, quorum, fencing, probes.
	HA HAConfig
	// TimeoutDetection follows nodes by their full heartbeats alone and
	// ignores liveness beats: the classic heartbeat-timeout detection,
	// kept as the failover benchmark's baseline.
	TimeoutDetection bool
	// Rebalance is the rebalancer's policy (zero: rebalance.DefaultLevel's);
	// NodeStore keeps drains (nil: in memory only). See rebalance.go, drain.go.
	Rebalance rebalance.Policy
	NodeStore store.NodeStore
	// MigrationPolicy steers mode auto (see migrate.Policy). Its zero value
	// never lets auto choose post-copy (AllowPostCopy false, the default of
	// baton server --allow-post-copy); an explicit post-copy request is
	// always honoured where the nodes support it.
	MigrationPolicy migrate.Policy
	// MigrationStore keeps migrations across server restarts and leader
	// changes (nil: in memory only; see migrations_store.go).
	MigrationStore store.MigrationStore
}

// NodeView is a node as the API shows it.
type NodeView struct {
	Name          string            `json:"name"`
	State         string            `json:"state"`
	StateSince    time.Time         `json:"state_since"`
	Labels        map[string]string `json:"labels"`
	Capacity      wire.Capacity     `json:"capacity"`
	Headroom      wire.Headroom     `json:"headroom"`
	Reserved      wire.Resources    `json:"reserved"`
	Workloads     int               `json:"workloads"`
	LastHeartbeat time.Time         `json:"last_heartbeat"`
	Drain         string            `json:"drain,omitempty"` // DrainDraining or DrainDrained
	// Features is what the node's agent can do for live migration (CRIU,
	// dirty-page tracking for pre-copy, lazy pages for post-copy), as it
	// detected at start; nil until it reported them.
	Features *wire.NodeFeatures `json:"features,omitempty"`
}

// nodeReport is the last heartbeat of a node.
type nodeReport struct {
	hb wire.Heartbeat
}

// Server is the scheduler. Its exported methods are safe for concurrent use.
// One mutex guards all of its state; it is never held while talking to an
// agent, only while writing to the store, so records are saved in order.
type Server struct {
	cfg Config
	log *slog.Logger

	mu         sync.Mutex
	leader     bool   // this server may act
	epoch      uint64 // its fencing token while leader
	leaderName string // who leads, as far as known
	members    *membership.Table
	reports    map[string]nodeReport
	workloads  map[string]store.Workload
	byNode     map[string]map[string]bool // node → ids of the workloads placed there
	byTarget   map[string]map[string]bool // node → ids of the workloads migrating to it
	inflight   map[string]bool            // workload ids with a reconcile command under way
	place      placeCache                 // placement's view, kept up to date (placecache.go)

	migrations     map[string]*migrationRun
	migrationOrder []string // migration ids, oldest first

	ha haState     // failover (ha.go)
	rb *rebalancer // see rbLocked
}

// New returns a server; call Load before serving.
func New(cfg Config) *Server {
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DefaultStrategy == "" {
		cfg.DefaultStrategy = placement.BinPack
	}
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = 15 * time.Second
	}
	return &Server{
		leader:    !cfg.AwaitLeadership,
		cfg:       cfg,
		log:       cfg.Logger,
		members:   membership.NewTable(cfg.Membership),
		reports:   map[string]nodeReport{},
		workloads: map[string]store.Workload{},
		byNode:    map[string]map[string]bool{},
		byTarget:  map[string]map[string]bool{},
		inflight:  map[string]bool{},
		place:     placeCache{dirty: map[string]bool{}},

		migrations: map[string]*migrationRun{},
		ha:         newHAState(),
	}
}

// Load reads the desired state from the store, replacing what the server
// had cached (a follower's cache, or a former leader's, may be stale).
func (s *Server) Load(ctx context.Context) error {
	list, err := s.cfg.Store.List(ctx)
	if err != nil {
		return fmt.Errorf("scheduler: loading workloads: %w", err)
	}
	if err := s.loadNodeRecords(ctx); err != nil {
		return err
	}
	if err := s.loadMigrations(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.workloads, s.byNode, s.byTarget = map[string]store.Workload{}, map[string]map[string]bool{}, map[string]map[string]bool{}
	s.placeResetLocked()
	for _, w := range list {
		s.cacheLocked(w)
	}
	s.log.Debug("loaded desired state", "workloads", len(list))
	return nil
}

// Start takes up the lead for a server that leads from the start (not
// AwaitLeadership): it loads the desired state and the failover state.
func (s *Server) Start(ctx context.Context) error {
	if err := s.Load(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	var acts []groups.Action
	if s.leader && s.ha.engine == nil {
		acts = s.becomeLeaderHALocked(ctx)
	}
	if s.leader {
		s.resumeMigrationsLocked()
	}
	s.mu.Unlock()
	s.dispatch(acts)
	return nil
}

// SetLeadership tells the server whether it leads (and with which epoch) or
// who does. A new leader reloads the desired state before it acts.
func (s *Server) SetLeadership(ctx context.Context, leader bool, epoch uint64, holder string) error {
	if leader {
		if err := s.Load(ctx); err != nil {
			return err
		}
	}
	s.mu.Lock()
	gained := leader && (!s.leader || s.epoch != epoch || s.ha.engine == nil)
	s.leader, s.epoch, s.leaderName = leader, epoch, holder
	var acts []groups.Action
	switch {
	case gained:
		acts = s.becomeLeaderHALocked(ctx)
		s.resumeMigrationsLocked()
	case !leader && s.ha.engine != nil:
		// A follower decides nothing: the next leader restores what this
		// one persisted. Its starts in flight and the starts it inherited
		// are no longer its business.
		s.ha.engine, s.ha.inherited = nil, nil
		clear(s.ha.starting)
		s.logEventLocked(Event{Kind: "leader", Detail: "lost the lead to " + holder})
	}
	s.mu.Unlock()
	s.dispatch(acts)
	return nil
}

// Leadership reports whether this server leads, its epoch, and the leader's name.
func (s *Server) Leadership() (leader bool, epoch uint64, holder string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leader, s.epoch, s.leaderName
}

// Epoch is the fencing token to put on commands (0 while not leading).
func (s *Server) Epoch() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.leader {
		return 0
	}
	return s.epoch
}

func (s *Server) notLeaderLocked() error {
	if s.leader {
		return nil
	}
	who := s.leaderName
	if who == "" {
		who = "not yet elected"
	}
	return fmt.Errorf("%w: this server is a follower (leader: %s); send changes to the leader's API or retry", ErrNotLeader, who)
}

// HandleHeartbeat records a heartbeat and reconciles the node with it.
func (s *Server) HandleHeartbeat(ctx context.Context, hb wire.Heartbeat) {
	now := s.cfg.Clock.Now()
	s.mu.Lock()
	var groupActs []groups.Action
	if _, known := s.members.Get(hb.Node); hb.AliveIntervalMS == 0 || !known || s.cfg.TimeoutDetection {
		// Nodes that send liveness beats are followed by those; this
		// slower report only introduces them.
		groupActs = s.transitionsLocked(s.members.Heartbeat(hb.Node, time.Duration(hb.IntervalMS)*time.Millisecond, now))
	}
	s.reports[hb.Node] = nodeReport{hb: hb}
	s.placeReportLocked(hb.Node)
	s.observeHeatLocked(hb)
	if !s.leader {
		s.mu.Unlock()
		return // followers keep their node table warm but never act
	}
	more, orphans := s.groupReportsLocked(hb)
	groupActs = append(groupActs, more...)
	m, _ := s.members.Get(hb.Node)
	updates, actions := reconcile(hb.Node, m.State == membership.Running, plainWorkloads(hb.Workloads), s.relevantLocked(hb))
	for _, u := range updates {
		u.UpdatedAt = now
		s.saveLocked(ctx, u)
	}
	var todo []action
	for _, a := range actions {
		if a.Kind == actPurge {
			s.purgeLocked(ctx, a.ID)
			continue
		}
		if s.inflight[a.ID] {
			continue
		}
		s.inflight[a.ID] = true
		todo = append(todo, a)
	}
	s.mu.Unlock()
	for _, a := range todo {
		go s.carryOut(a)
	}
	s.dispatch(groupActs)
	if len(orphans) > 0 {
		go s.stopOrphans(hb.Node, orphans)
	}
}

// plainWorkloads drops the resources of resource groups from a report: the
// group engine, not the workload reconciler, owns those.
func plainWorkloads(ws []wire.WorkloadStatus) []wire.WorkloadStatus {
	out := make([]wire.WorkloadStatus, 0, len(ws))
	for _, w := range ws {
		if w.Group == nil {
			out = append(out, w)
		}
	}
	return out
}

// HandleAlive records a liveness beat.
func (s *Server) HandleAlive(a wire.Alive) {
	if s.cfg.TimeoutDetection {
		return
	}
	s.mu.Lock()
	acts := s.transitionsLocked(s.members.Heartbeat(a.Node, time.Duration(a.IntervalMS)*time.Millisecond, s.cfg.Clock.Now()))
	s.mu.Unlock()
	s.dispatch(acts)
}

// HandleLeave records an orderly leave.
func (s *Server) HandleLeave(l wire.Leave) {
	s.mu.Lock()
	acts := s.transitionsLocked(s.members.Leave(l.Node, s.cfg.Clock.Now()))
	s.mu.Unlock()
	s.dispatch(acts)
}

// Tick applies the membership timeouts, sends the probes they ask for, and
// lets the group engine act on its deadlines (fence retries, self-fence
// deadlines) and the witness's grant.
func (s *Server) Tick() {
	now := s.cfg.Clock.Now()
	s.mu.Lock()
	up := s.members.Step(now)
	acts := s.transitionsLocked(up.Transitions)
	if s.cfg.HA.Witness != nil {
		// The witness's grant changes on its own time.
		acts = append(acts, s.quorumChangedLocked(now)...)
	}
	if s.ha.engine != nil {
		if d, ok := s.ha.engine.NextDeadline(); ok && !now.Before(d) {
			acts = append(acts, s.handleLocked(groups.Event{Kind: groups.Tick, At: now})...)
		}
	}
	type probe struct {
		p    membership.Probe
		addr string
	}
	var probes []probe
	for _, p := range up.Probes {
		if s.ha.probing[p.Node] {
			continue
		}
		s.ha.probing[p.Node] = true
		probes = append(probes, probe{p, s.reports[p.Node].hb.ProbeAddr})
	}
	s.mu.Unlock()
	for _, p := range probes {
		go s.probe(p.p, p.addr)
	}
	s.dispatch(acts)
}

// carryOut sends one reconcile command and records its outcome.
func (s *Server) carryOut(a action) {
	defer func() {
		s.mu.Lock()
		delete(s.inflight, a.ID)
		s.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CommandTimeout)
	defer cancel()
	switch a.Kind {
	case actStop:
		if _, err := s.cfg.Agents.Stop(ctx, a.Node, a.ID); err != nil {
			s.log.Warn("stopping unwanted workload", "node", a.Node, "workload", a.ID, "err", err)
		}
	case actStart:
		s.mu.Lock()
		rec, ok := s.workloads[a.ID]
		s.mu.Unlock()
		if !ok || rec.Desired != store.DesiredRunning || rec.Node != a.Node {
			return
		}
		s.log.Info("starting workload", "node", a.Node, "workload", a.ID, "name", rec.Name)
		st, err := s.cfg.Agents.Start(ctx, a.Node, rec.Spec())
		s.recordStart(context.Background(), a.ID, a.Node, st, err)
	}
}

// recordStart stores the outcome of a start command sent to node. An answer
// for a record that has moved to another node meanwhile (a reload, a drain's
// restart elsewhere) is not about it: the record stays as it is, and the
// next report from node has the copy there stopped as unwanted.
func (s *Server) recordStart(ctx context.Context, id, node string, st wire.WorkloadStatus, err error) store.Workload {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.workloads[id]
	if !ok || rec.Desired != store.DesiredRunning || rec.Node != node {
		return rec
	}
	switch {
	case errors.Is(err, ErrAgent):
		rec.State, rec.Error, rec.HostPID = wire.StateFailed, err.Error(), 0
	case err != nil:
		// No answer: the agent may still start it; the next heartbeat tells.
		rec.Error = err.Error()
	default:
		rec, _ = observe(rec, st)
	}
	rec.UpdatedAt = s.cfg.Clock.Now()
	s.saveLocked(ctx, rec)
	return rec
}

// saveLocked updates the cache and the store. A store failure is logged and
// the cache keeps the new value; the next change retries the write.
func (s *Server) saveLocked(ctx context.Context, w store.Workload) {
	s.cacheLocked(w)
	if err := s.cfg.Store.Put(ctx, w); err != nil {
		s.log.Error("saving workload", "workload", w.ID, "err", err)
	}
}

func (s *Server) purgeLocked(ctx context.Context, id string) {
	if err := s.cfg.Store.Delete(ctx, id); err != nil {
		s.log.Error("deleting workload record", "workload", id, "err", err)
		return
	}
	s.uncacheLocked(id)
	s.log.Info("workload deleted", "workload", id)
}

// cacheLocked stores w in the cache and the per-node indexes, and marks
// the nodes where what it holds may have changed.
func (s *Server) cacheLocked(w store.Workload) {
	old, ok := s.workloads[w.ID]
	if ok {
		s.unindexLocked(old)
	}
	s.workloads[w.ID] = w
	addToIndex(s.byNode, w.Node, w.ID)
	if w.MigrationTarget != "" {
		addToIndex(s.byTarget, w.MigrationTarget, w.ID)
	}
	s.placeDirtyLocked(old.Node, old.MigrationTarget, w.Node, w.MigrationTarget)
}

func (s *Server) uncacheLocked(id string) {
	if old, ok := s.workloads[id]; ok {
		s.unindexLocked(old)
		s.placeDirtyLocked(old.Node, old.MigrationTarget)
	}
	delete(s.workloads, id)
}

// unindexLocked removes w from the per-node indexes.
func (s *Server) unindexLocked(w store.Workload) {
	delete(s.byNode[w.Node], w.ID)
	if w.MigrationTarget != "" {
		delete(s.byTarget[w.MigrationTarget], w.ID)
	}
}

func addToIndex(index map[string]map[string]bool, node, id string) {
	if index[node] == nil {
		index[node] = map[string]bool{}
	}
	index[node][id] = true
}

// relevantLocked returns the records reconcile needs for one heartbeat: the
// workloads placed on the node and those it reports, so a heartbeat costs in
// proportion to the node's workloads, not the cluster's.
func (s *Server) relevantLocked(hb wire.Heartbeat) map[string]store.Workload {
	out := make(map[string]store.Workload, len(s.byNode[hb.Node])+len(hb.Workloads))
	for id := range s.byNode[hb.Node] {
		out[id] = s.workloads[id]
	}
	for _, r := range hb.Workloads {
		if w, ok := s.workloads[r.ID]; ok {
			out[r.ID] = w
		}
	}
	return out
}

// placementNodesLocked builds placement's view of every known node from
// scratch. Decisions use the Cluster placementLocked keeps equal to it;
// this is its reference (and what it is built from).
func (s *Server) placementNodesLocked() []placement.Node {
	reserved, names := s.reservationsLocked()
	out := make([]placement.Node, 0, len(s.reports))
	for _, m := range s.members.List() {
		out = append(out, s.placementNodeLocked(m, reserved[m.Name], names[m.Name]))
	}
	return out
}

// reservationsLocked sums the requests of the live workloads on each node,
// in one pass over every workload (reservationOnLocked does one node).
func (s *Server) reservationsLocked() (map[string]placement.Resources, map[string][]string) {
	reserved := map[string]placement.Resources{}
	names := map[string][]string{}
	for _, w := range s.workloads {
		for _, node := range []string{w.Node, w.MigrationTarget} {
			if r, ok := s.heldLocked(w, node); ok {
				reserved[node] = addResources(reserved[node], r)
				names[node] = append(names[node], w.Name)
			}
		}
	}
	return reserved, names
}

// heldLocked is what workload w holds on node, false for nothing: a live
// (placed, not exited) workload holds its requests on its node and, while
// it migrates, migrationReserveLocked on the target.
func (s *Server) heldLocked(w store.Workload, node string) (placement.Resources, bool) {
	switch {
	case node == "" || w.Node == "" || exited(w.State):
		return placement.Resources{}, false
	case node == w.MigrationTarget:
		return s.migrationReserveLocked(w), true
	case node == w.Node:
		return placement.Resources{CPUMillis: w.Resources.CPUMillis, MemoryMB: w.Resources.MemoryMB}, true
	}
	return placement.Resources{}, false
}

func addResources(a, b placement.Resources) placement.Resources {
	return placement.Resources{CPUMillis: a.CPUMillis + b.CPUMillis, MemoryMB: a.MemoryMB + b.MemoryMB}
}

// Plan is a dry run: where req would go and why, without creating anything.
func (s *Server) Plan(req WorkloadRequest) (placement.Decision, error) {
	if err := req.Validate(); err != nil {
		return placement.Decision{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.placementLocked().Plan(req.placementRequest(s.cfg.DefaultStrategy))
}

// CreateWorkload validates, places and starts a workload. It waits for the
// agent's answer up to the command timeout; a workload the agent refuses to
// start (program not found, bad workdir) is not kept. A workload whose agent
// does not answer in time is kept in state starting and followed up by
// reconciliation.
func (s *Server) CreateWorkload(ctx context.Context, req WorkloadRequest) (store.Workload, error) {
	if err := req.Validate(); err != nil {
		return store.Workload{}, err
	}
	now := s.cfg.Clock.Now()
	s.mu.Lock()
	if err := s.notLeaderLocked(); err != nil {
		s.mu.Unlock()
		return store.Workload{}, err
	}
	for _, w := range s.workloads {
		if w.Name == req.Name && w.Desired == store.DesiredRunning {
			s.mu.Unlock()
			return store.Workload{}, fmt.Errorf("%w: workload name %q is already used by %s: delete it first or choose another name", ErrConflict, req.Name, w.ID)
		}
	}
	dec, err := s.placementLocked().Place(req.placementRequest(s.cfg.DefaultStrategy))
	if err != nil {
		s.mu.Unlock()
		return store.Workload{}, err
	}
	kind := req.Kind
	if kind == "" {
		kind = "process"
	}
	w := store.Workload{
		ID: newID(), Name: req.Name, Kind: kind, Command: req.Command, Env: req.Env, Workdir: req.Workdir,
		Resources: req.Resources, Constraints: req.Constraints, Strategy: string(dec.Strategy), Priority: req.Priority,
		Desired: store.DesiredRunning, Node: dec.Node, State: wire.StateStarting,
		CreatedAt: now, UpdatedAt: now,
	}
	// Reserve the capacity at once (in the cache) so concurrent creations see
	// it, and keep reconciliation from sending a second start meanwhile.
	s.cacheLocked(w)
	s.inflight[w.ID] = true
	if err := s.cfg.Store.Put(ctx, w); err != nil {
		s.uncacheLocked(w.ID)
		delete(s.inflight, w.ID)
		s.mu.Unlock()
		return store.Workload{}, fmt.Errorf("scheduler: saving workload %q: %w", w.Name, err)
	}
	s.mu.Unlock()
	s.log.Info("workload placed", "workload", w.ID, "name", w.Name, "node", w.Node, "strategy", dec.Strategy)

	cctx, cancel := context.WithTimeout(ctx, s.cfg.CommandTimeout)
	st, err := s.cfg.Agents.Start(cctx, w.Node, w.Spec())
	cancel()
	s.mu.Lock()
	delete(s.inflight, w.ID)
	s.mu.Unlock()
	if errors.Is(err, ErrAgent) {
		s.mu.Lock()
		s.purgeLocked(context.WithoutCancel(ctx), w.ID)
		s.mu.Unlock()
		return store.Workload{}, fmt.Errorf("workload %q: node %s could not start it: %w", w.Name, w.Node, err)
	}
	return s.recordStart(context.WithoutCancel(ctx), w.ID, w.Node, st, err), nil
}

// DeleteWorkload stops a workload's process tree and forgets it. It returns
// done=false when the node did not confirm in time; the record then stays,
// marked deleted, until the node confirms.
func (s *Server) DeleteWorkload(ctx context.Context, id string) (w store.Workload, done bool, err error) {
	s.mu.Lock()
	if err := s.notLeaderLocked(); err != nil {
		s.mu.Unlock()
		return store.Workload{}, false, err
	}
	w, ok := s.workloads[id]
	if !ok {
		s.mu.Unlock()
		return store.Workload{}, false, fmt.Errorf("%w: workload %q", ErrNotFound, id)
	}
	w.Desired, w.UpdatedAt = store.DesiredDeleted, s.cfg.Clock.Now()
	s.saveLocked(ctx, w)
	s.mu.Unlock()

	if w.Node == "" {
		s.mu.Lock()
		s.purgeLocked(ctx, id)
		s.mu.Unlock()
		return w, true, nil
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.CommandTimeout)
	st, err := s.cfg.Agents.Stop(cctx, w.Node, id)
	cancel()
	if err != nil {
		s.log.Warn("stop not confirmed; will retry when the node reports", "workload", id, "node", w.Node, "err", err)
		return w, false, nil
	}
	w, _ = observe(w, st)
	w.State = wire.StateStopped
	s.mu.Lock()
	s.purgeLocked(context.WithoutCancel(ctx), id)
	s.mu.Unlock()
	return w, true, nil
}

// Workloads lists every workload, sorted by name then id.
func (s *Server) Workloads() []store.Workload {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]store.Workload, 0, len(s.workloads))
	for _, w := range s.workloads {
		out = append(out, w)
	}
	slices.SortFunc(out, func(a, b store.Workload) int {
		if a.Name != b.Name {
			return cmp.Compare(a.Name, b.Name)
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out
}

// Workload returns one workload.
func (s *Server) Workload(id string) (store.Workload, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.workloads[id]
	if !ok {
		return store.Workload{}, fmt.Errorf("%w: workload %q", ErrNotFound, id)
	}
	return w, nil
}

// Nodes lists every node seen, sorted by name.
func (s *Server) Nodes() []NodeView {
	s.mu.Lock()
	defer s.mu.Unlock()
	reserved, names := s.reservationsLocked()
	out := make([]NodeView, 0, len(s.reports))
	for _, m := range s.members.List() {
		hb := s.reports[m.Name].hb
		r := reserved[m.Name]
		labels := hb.Labels
		if labels == nil {
			labels = map[string]string{}
		}
		out = append(out, NodeView{
			Name: m.Name, State: string(m.State), StateSince: m.Since, Labels: labels,
			Capacity: hb.Capacity, Headroom: hb.Headroom,
			Reserved:  wire.Resources{CPUMillis: r.CPUMillis, MemoryMB: r.MemoryMB},
			Workloads: len(names[m.Name]), LastHeartbeat: m.LastHeartbeat,
			Drain: s.drainStateLocked(m.Name, len(names[m.Name])), Features: hb.Features,
		})
	}
	return out
}

// Node returns one node.
func (s *Server) Node(name string) (NodeView, error) {
	for _, n := range s.Nodes() {
		if n.Name == name {
			return n, nil
		}
	}
	return NodeView{}, fmt.Errorf("%w: node %q", ErrNotFound, name)
}

func newID() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return "w-" + hex.EncodeToString(b[:])
}

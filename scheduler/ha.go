package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/batonhq/baton/failover"
	"github.com/batonhq/baton/failover/groups"
	"github.com/batonhq/baton/failover/membership"
	"github.com/batonhq/baton/failover/quorum"
	"github.com/batonhq/baton/placement"
	"github.com/batonhq/baton/scheduler/store"
	"github.com/batonhq/baton/wire"
)

// The failover adapter: it drives the pure cores of failover/ (membership,
// quorum, groups) as failover/README.md's contract says, under the server's
// one mutex, and carries out their actions on agents and fence devices
// outside it. Only the leader feeds the engine; a follower keeps its
// membership table warm so that it can take over at once.

// Fencer powers nodes off through fence devices.
type Fencer interface {
	// Fence powers node off with device and returns nil only once the
	// device confirmed it off.
	Fence(ctx context.Context, node, device string) error
}

// Prober checks a node directly, on a path other than its heartbeats.
type Prober interface {
	// Probe returns nil if the agent of node answers at addr.
	Probe(ctx context.Context, node, addr string) error
}

// SelfFencer is implemented by agent clients that can tell a node to stop
// its group resources at once.
type SelfFencer interface {
	SelfFence(ctx context.Context, node string) error
}

// Witness tells whether this server holds the quorum witness's vote.
type Witness interface{ Granted() bool }

// HAConfig configures failover.
type HAConfig struct {
	Groups  groups.Config
	Quorum  quorum.Config
	Fencer  Fencer  // nil: no fence device; recovery waits for a manual confirmation
	Prober  Prober  // nil: every probe fails (silence alone is the evidence)
	Witness Witness // nil: no witness
	// State keeps the engine's snapshot and the votes for the next leader;
	// nil keeps them in memory.
	State store.StateStore
	// FenceTimeout bounds one fence attempt (default 60 s).
	FenceTimeout time.Duration
}

// State keys.
const (
	stateKeyGroups = "groups"
	stateKeyQuorum = "quorum"
)

// quorumDoc is the persisted part of the quorum.
type quorumDoc struct {
	Votes   map[string]int `json:"votes"`
	AllSeen bool           `json:"all_seen"`
}

// Event is one entry of the cluster's event log (GET /v1/events): node state
// changes, quorum changes, fence attempts and their results, group state
// changes, resource starts and stops.
type Event struct {
	At       time.Time `json:"at"`
	Kind     string    `json:"kind"`
	Node     string    `json:"node,omitempty"`
	Group    string    `json:"group,omitempty"`
	Resource string    `json:"resource,omitempty"`
	Detail   string    `json:"detail"`
}

const maxEvents = 1000

// groupRun is what the server knows of one run of a group resource on a
// node, to turn level-triggered reports into one event each.
type groupRun struct {
	startedAt       time.Time
	monitorFailures int
	exitReported    bool
}

// haState is the adapter's state, guarded by Server.mu.
type haState struct {
	engine *groups.Engine // nil unless leading
	quorum *quorum.Tracker
	votes  map[string]int
	status quorum.Status
	runs   map[string]groupRun // node/workload id → run
	// starting holds the node/workload ids of group resources this server
	// is starting (from the engine's decision to the agent's answer).
	starting map[string]bool
	// inherited are the starts and stops the last leader had in flight
	// when this server took the lead: asked again once their node runs.
	inherited []groups.Action
	probing   map[string]bool
	events    []Event
	// allSeenSaved: wait-for-all's latch has been persisted.
	allSeenSaved bool
}

func newHAState() haState {
	return haState{votes: map[string]int{}, runs: map[string]groupRun{}, starting: map[string]bool{}, probing: map[string]bool{}}
}

func (s *Server) stateStore() store.StateStore {
	if s.cfg.HA.State == nil {
		s.cfg.HA.State = store.NewMemoryState()
	}
	return s.cfg.HA.State
}

// logEventLocked appends to the event log and the server's log.
func (s *Server) logEventLocked(e Event) {
	if e.At.IsZero() {
		e.At = s.cfg.Clock.Now()
	}
	s.ha.events = append(s.ha.events, e)
	if n := len(s.ha.events); n > maxEvents {
		s.ha.events = slices.Delete(s.ha.events, 0, n-maxEvents)
	}
	s.log.Info("event", "kind", e.Kind, "node", e.Node, "group", e.Group, "resource", e.Resource, "detail", e.Detail)
}

// becomeLeaderHALocked builds the engine and the quorum from what the last
// leader persisted and from this server's own membership table.
func (s *Server) becomeLeaderHALocked(ctx context.Context) []groups.Action {
	now := s.cfg.Clock.Now()
	cfg := s.cfg.HA.Groups
	cfg.Place = s.placeGroupLocked
	var snap groups.Snapshot
	engine := groups.New(cfg)
	if doc, err := s.stateStore().Get(ctx, stateKeyGroups); err == nil {
		if err := json.Unmarshal(doc, &snap); err != nil {
			s.log.Error("resource-group state is corrupt; starting with no groups", "err", err)
		} else {
			engine = groups.Restore(cfg, snap)
		}
	} else if !errors.Is(err, store.ErrNoState) {
		s.log.Error("reading resource-group state; starting with no groups", "err", err)
	}
	var qd quorumDoc
	if doc, err := s.stateStore().Get(ctx, stateKeyQuorum); err == nil {
		_ = json.Unmarshal(doc, &qd)
	}
	s.ha.engine, s.ha.quorum = engine, quorum.New(s.cfg.HA.Quorum)
	s.ha.votes = map[string]int{}
	for n, v := range qd.Votes {
		s.ha.votes[n] = v
		s.ha.quorum.Add(n, v)
	}
	if qd.AllSeen {
		s.ha.quorum.MarkAllSeen()
	}
	// A node the last leader had up but this server has not heard from yet
	// (a fresh process) is seeded as if it had just beaten once: if it is
	// alive its beats follow; if it died during the handover it still goes
	// suspect → probe → down, and is fenced, like any other.
	for _, n := range engine.Nodes() {
		if _, ok := s.members.Get(n.Name); !ok && n.State != groups.NodeIsDown {
			s.members.Heartbeat(n.Name, 0, now)
		}
	}
	for _, m := range s.members.List() {
		s.knowNodeLocked(m.Name)
		s.ha.quorum.SetLive(m.Name, failover.Live(m.State))
	}
	s.ha.status = quorum.Status{}
	// Quorum first, so that a partition that took the lead without quorum
	// fences nobody.
	acts := s.quorumChangedLocked(now)
	// The engine learns the nodes' states as this server sees them now.
	for _, m := range s.members.List() {
		acts = append(acts, s.nodeEventLocked(membership.Transition{Node: m.Name, To: m.State, At: now, Reason: "state when this server took the lead"})...)
	}
	// Starts this server sent under an earlier epoch answer into nothing
	// (feed drops them): forget them, or they would hide the starts to ask
	// again.
	clear(s.ha.starting)
	s.inheritInFlightLocked()
	acts = append(acts, s.askAgainLocked()...)
	s.logEventLocked(Event{At: now, Kind: "leader", Detail: fmt.Sprintf("took the lead (epoch %d) with %d groups; %s", s.epoch, len(engine.Groups()), s.ha.status)})
	s.afterBatchLocked(ctx, acts)
	return acts
}

// inheritInFlightLocked notes the starts and stops the last leader had sent
// and not yet heard back from: their answers went to it, and nothing else
// would ever move those resources out of starting or stopping.
func (s *Server) inheritInFlightLocked() {
	s.ha.inherited = nil
	for _, g := range s.ha.engine.Groups() {
		for i, st := range g.Resources {
			kind := groups.StartResource
			switch st {
			case groups.ResStarting:
			case groups.ResStopping:
				kind = groups.StopResource
			default:
				continue
			}
			res := g.Spec.Resources[i]
			s.ha.inherited = append(s.ha.inherited, groups.Action{Kind: kind, Group: g.Spec.Name, Resource: res.Name, Spec: &res, Node: g.Node})
		}
	}
}

// askAgainLocked repeats the inherited starts and stops of the nodes that
// run now, once each, if the engine still waits for them there. Agents
// apply both idempotently (a start of a running resource answers with that
// run; a stop of a stopped one succeeds), so asking again is safe.
func (s *Server) askAgainLocked() []groups.Action {
	if !s.leader || s.ha.engine == nil {
		return nil
	}
	var out []groups.Action
	keep := s.ha.inherited[:0]
	for _, a := range s.ha.inherited {
		if m, ok := s.members.Get(a.Node); !ok || m.State != membership.Running {
			keep = append(keep, a) // asked when the node runs
			continue
		}
		g, ok := s.ha.engine.Group(a.Group)
		i := -1
		if ok {
			i = slices.IndexFunc(g.Spec.Resources, func(r groups.Resource) bool { return r.Name == a.Resource })
		}
		want := groups.ResStarting
		if a.Kind == groups.StopResource {
			want = groups.ResStopping
		}
		key := a.Node + "/" + groupWorkloadID(a.Group, a.Resource)
		if i < 0 || g.Node != a.Node || g.Resources[i] != want || s.ha.starting[key] {
			continue // the engine moved on, or this server sent its own
		}
		verb := "start"
		if a.Kind == groups.StopResource {
			verb = "stop"
		} else {
			s.ha.starting[key] = true
		}
		a.Reason = "the last leader's " + verb + " had no answer: asked again"
		s.logEventLocked(Event{Kind: verb, Node: a.Node, Group: a.Group, Resource: a.Resource, Detail: a.Reason})
		out = append(out, a)
	}
	s.ha.inherited = keep
	return out
}

// knowNodeLocked gives a newly seen node its default vote, persisted.
func (s *Server) knowNodeLocked(node string) {
	if _, ok := s.ha.votes[node]; ok {
		return
	}
	s.ha.votes[node] = 1
	if s.ha.quorum != nil {
		s.ha.quorum.Add(node, 1)
	}
	s.saveQuorumLocked()
}

func (s *Server) saveQuorumLocked() {
	if s.ha.quorum == nil {
		return
	}
	doc, _ := json.Marshal(quorumDoc{Votes: s.ha.votes, AllSeen: s.ha.quorum.AllSeen()})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.stateStore().Put(ctx, stateKeyQuorum, doc); err != nil {
		s.log.Error("saving quorum votes", "err", err)
	}
}

// afterBatchLocked persists the engine's state after it handled events and
// logs the state changes it decided.
func (s *Server) afterBatchLocked(ctx context.Context, acts []groups.Action) {
	if s.ha.engine == nil {
		return
	}
	for _, a := range acts {
		if a.Kind == groups.SetState {
			s.logEventLocked(Event{Kind: "group", Group: a.Group, Node: a.Node, Detail: fmt.Sprintf("%s: %s", a.State, a.Reason)})
		}
	}
	doc, err := json.Marshal(s.ha.engine.Snapshot())
	if err != nil {
		s.log.Error("encoding resource-group state", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.stateStore().Put(ctx, stateKeyGroups, doc); err != nil {
		s.log.Error("saving resource-group state", "err", err)
	}
}

// handleLocked feeds one event to the engine (leader only) and returns the
// actions to carry out once the lock is released.
func (s *Server) handleLocked(ev groups.Event) []groups.Action {
	if !s.leader || s.ha.engine == nil {
		return nil
	}
	acts := s.ha.engine.Handle(ev)
	for _, a := range acts {
		if a.Kind == groups.StartResource {
			s.ha.starting[a.Node+"/"+groupWorkloadID(a.Group, a.Resource)] = true
		}
	}
	if ev.Kind != groups.Tick || len(acts) > 0 {
		s.afterBatchLocked(context.Background(), acts)
	}
	return acts
}

// transitionsLocked applies membership transitions to the quorum and the
// engine.
func (s *Server) transitionsLocked(ts []membership.Transition) []groups.Action {
	if len(ts) == 0 {
		return nil
	}
	for _, t := range ts {
		s.placeDirtyLocked(t.Node)
		s.logEventLocked(Event{At: t.At, Kind: "node", Node: t.Node, Detail: t.String()})
		if s.ha.quorum != nil {
			s.knowNodeLocked(t.Node)
			s.ha.quorum.SetLive(t.Node, failover.Live(t.To))
		}
	}
	// Quorum first: a partition that lost it with these transitions must
	// not fence the nodes it lost.
	acts := s.quorumChangedLocked(ts[len(ts)-1].At)
	for _, t := range ts {
		acts = append(acts, s.nodeEventLocked(t)...)
	}
	if len(s.ha.inherited) > 0 {
		acts = append(acts, s.askAgainLocked()...)
	}
	return acts
}

// nodeEventLocked feeds a membership transition to the engine. A drained
// node that runs is "leaving" for the engine: its groups move off in order,
// without a fence, and none comes to it.
func (s *Server) nodeEventLocked(t membership.Transition) []groups.Action {
	ev, ok := failover.NodeEvent(t)
	if !ok {
		return nil
	}
	if ev.Kind == groups.NodeUp && s.drainedLocked(t.Node) {
		ev.Kind, ev.Reason = groups.NodeLeaving, "drained"
	}
	return s.handleLocked(ev)
}

// quorumChangedLocked re-evaluates the quorum and tells the engine when it
// changed.
func (s *Server) quorumChangedLocked(now time.Time) []groups.Action {
	if s.ha.quorum == nil {
		return nil
	}
	if w := s.cfg.HA.Witness; w != nil {
		s.ha.quorum.SetWitness(w.Granted())
	}
	prev, cur := s.ha.status, s.ha.quorum.Status()
	s.ha.status = cur
	if cur.Quorate && s.cfg.HA.Quorum.WaitForAll && s.ha.quorum.AllSeen() {
		s.saveQuorumLockedOnce()
	}
	ev, ok := failover.QuorumEvent(prev, cur, now)
	if !ok {
		return nil
	}
	s.logEventLocked(Event{At: now, Kind: "quorum", Detail: cur.String()})
	return s.handleLocked(ev)
}

// saveQuorumLockedOnce persists wait-for-all's latch the first time it is met.
func (s *Server) saveQuorumLockedOnce() {
	if !s.ha.allSeenSaved {
		s.ha.allSeenSaved = true
		s.saveQuorumLocked()
	}
}

// placeGroupLocked is the engine's Place hook: a group with a preference
// list takes its most preferred eligible node; one without is placed by the
// placer (spread), sized for the sum of its resources' requests.
func (s *Server) placeGroupLocked(g groups.Group, eligible []string) string {
	if len(g.Nodes) > 0 || len(eligible) == 1 {
		return eligible[0]
	}
	var need placement.Resources
	for _, r := range g.Resources {
		var p processSpec
		if json.Unmarshal(r.Spec, &p) == nil {
			need.CPUMillis += p.Resources.CPUMillis
			need.MemoryMB += p.Resources.MemoryMB
		}
	}
	dec, err := s.placementLocked().Place(placement.Request{
		Workload: g.Name, Resources: need, Strategy: placement.Spread,
		Constraints: placement.Constraints{Nodes: eligible},
	})
	if err != nil {
		return eligible[0]
	}
	return dec.Node
}

// groupReportsLocked turns a node's reports of group resources into engine
// events (a resource that exited, a monitor that failed) and stops copies
// the engine does not want there.
func (s *Server) groupReportsLocked(hb wire.Heartbeat) (acts []groups.Action, orphans []string) {
	if s.ha.engine == nil {
		return nil, nil
	}
	now := s.cfg.Clock.Now()
	seen := map[string]bool{}
	for _, r := range hb.Workloads {
		if r.Group == nil {
			continue
		}
		seen[r.ID] = true
		g, ok := s.ha.engine.Group(r.Group.Group)
		i := -1
		if ok {
			i = slices.IndexFunc(g.Spec.Resources, func(res groups.Resource) bool { return res.Name == r.Group.Resource })
		}
		if !ok || g.Node != hb.Node || i < 0 || g.Resources[i] == groups.ResStopped {
			if !exited(r.State) {
				orphans = append(orphans, r.ID)
			}
			continue
		}
		key := hb.Node + "/" + r.ID
		if g.Resources[i] == groups.ResStopping {
			continue // it exits because it is being stopped; the stop's answer tells
		}
		if g.Resources[i] == groups.ResStarting && s.ha.starting[key] {
			// The start's answer tells; until then the node reports an
			// earlier run (a dead record its agent re-adopted after a
			// fence or a self-fence), which is no failure of this one.
			continue
		}
		run, known := s.ha.runs[key]
		if !known {
			run = groupRun{startedAt: r.StartedAt}
		} else if !run.startedAt.Equal(r.StartedAt) {
			continue // a report of an earlier run
		}
		ev := groups.Event{At: now, Node: hb.Node, Group: g.Spec.Name, Resource: r.Group.Resource}
		switch {
		case exited(r.State) && !run.exitReported:
			run.exitReported = true
			ev.Kind, ev.Reason = groups.ResourceFailed, exitReason(r)
		case r.MonitorFailures > run.monitorFailures:
			run.monitorFailures = r.MonitorFailures
			ev.Kind, ev.Reason = groups.MonitorFailed, r.MonitorError
		}
		s.ha.runs[key] = run
		if ev.Kind != "" {
			s.logEventLocked(Event{Kind: string(ev.Kind), Node: hb.Node, Group: ev.Group, Resource: ev.Resource, Detail: ev.Reason})
			acts = append(acts, s.handleLocked(ev)...)
		}
	}
	// A resource the engine holds started there that the node no longer
	// runs is gone (the agent lost it): a failure. Only runs that started
	// well before this report was sent count, so a start that raced with
	// the report is not mistaken for a loss.
	for _, g := range s.ha.engine.Groups() {
		if g.Node != hb.Node {
			continue
		}
		for i, res := range g.Spec.Resources {
			id := groupWorkloadID(g.Spec.Name, res.Name)
			run, known := s.ha.runs[hb.Node+"/"+id]
			if g.Resources[i] != groups.ResStarted || seen[id] || !known || hb.SentAt.Before(run.startedAt.Add(time.Second)) {
				continue
			}
			delete(s.ha.runs, hb.Node+"/"+id)
			ev := groups.Event{Kind: groups.ResourceFailed, At: now, Node: hb.Node, Group: g.Spec.Name, Resource: res.Name, Reason: "no longer running on the node"}
			s.logEventLocked(Event{Kind: string(ev.Kind), Node: hb.Node, Group: ev.Group, Resource: ev.Resource, Detail: ev.Reason})
			acts = append(acts, s.handleLocked(ev)...)
		}
	}
	return acts, orphans
}

func exitReason(r wire.WorkloadStatus) string {
	switch {
	case r.Error != "":
		return "exited: " + r.Error
	case r.ExitCode != nil:
		return fmt.Sprintf("exited with code %d", *r.ExitCode)
	}
	return "exited"
}

// dispatch carries out the engine's actions, each on its own goroutine; their
// outcomes come back as events.
func (s *Server) dispatch(acts []groups.Action) {
	if len(acts) == 0 {
		return
	}
	s.mu.Lock()
	epoch := s.epoch
	s.mu.Unlock()
	for _, a := range acts {
		switch a.Kind {
		case groups.StartResource, groups.StopResource, groups.Fence, groups.SelfFence:
			go s.carryOutGroupAction(epoch, a)
		}
	}
}

// feed hands an outcome back to the engine if this server still leads with
// the epoch the action was decided in, then carries out what follows.
// answered, if not nil, runs first under the same lock, whatever the epoch.
func (s *Server) feed(epoch uint64, ev groups.Event, logged Event, answered func()) {
	s.mu.Lock()
	if answered != nil {
		answered()
	}
	if !s.leader || s.epoch != epoch {
		s.mu.Unlock()
		return
	}
	if logged.Kind != "" {
		s.logEventLocked(logged)
	}
	acts := s.handleLocked(ev)
	s.mu.Unlock()
	s.dispatch(acts)
}

func (s *Server) carryOutGroupAction(epoch uint64, a groups.Action) {
	ev := groups.Event{Node: a.Node, Group: a.Group, Resource: a.Resource, Level: a.Level}
	logged := Event{Node: a.Node, Group: a.Group, Resource: a.Resource}
	// answered, if set, records the answer to a start; it runs under the
	// lock with the engine's handling of it, so that no report slips in
	// between (see groupReportsLocked).
	var answered func()
	switch a.Kind {
	case groups.StartResource:
		spec, err := groupWorkloadSpec(a.Group, *a.Spec)
		var st wire.WorkloadStatus
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CommandTimeout)
			st, err = s.cfg.Agents.Start(ctx, a.Node, spec)
			cancel()
		}
		if err == nil && st.State != wire.StateRunning {
			err = fmt.Errorf("it is %s right after the start: %s", st.State, exitReason(st))
		}
		logged.Kind = "start"
		key := a.Node + "/" + groupWorkloadID(a.Group, a.Resource)
		if err != nil {
			ev.Kind, ev.Reason = groups.ResourceFailed, "start failed: "+err.Error()
			logged.Detail = ev.Reason
			answered = func() { delete(s.ha.starting, key) }
		} else {
			ev.Kind = groups.ResourceStarted
			logged.Detail = fmt.Sprintf("started (pid %d): %s", st.HostPID, a.Reason)
			answered = func() {
				delete(s.ha.starting, key)
				s.ha.runs[key] = groupRun{startedAt: st.StartedAt}
			}
		}
	case groups.StopResource:
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CommandTimeout)
		_, err := s.cfg.Agents.Stop(ctx, a.Node, groupWorkloadID(a.Group, a.Resource))
		cancel()
		logged.Kind = "stop"
		if err != nil {
			ev.Kind, ev.Reason = groups.ResourceFailed, "stop failed: "+err.Error()
			logged.Detail = ev.Reason
		} else {
			ev.Kind, logged.Detail = groups.ResourceStopped, "stopped: "+a.Reason
		}
	case groups.Fence:
		logged.Kind = "fence"
		s.mu.Lock()
		s.logEventLocked(Event{Kind: "fence", Node: a.Node, Detail: fmt.Sprintf("level %d (%s): fencing: %s", a.Level, a.Device, a.Reason)})
		s.mu.Unlock()
		err := errors.New("no fence device is configured (give baton server --fence-config), or confirm the node is off with 'baton node fence " + a.Node + " --confirm-off'")
		if f := s.cfg.HA.Fencer; f != nil {
			timeout := s.cfg.HA.FenceTimeout
			if timeout <= 0 {
				timeout = time.Minute
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			err = f.Fence(ctx, a.Node, a.Device)
			cancel()
		}
		if err != nil {
			ev.Kind, ev.Reason = groups.FenceFailed, err.Error()
			logged.Detail = fmt.Sprintf("level %d (%s) failed: %v", a.Level, a.Device, err)
		} else {
			ev.Kind = groups.Fenced
			logged.Detail = fmt.Sprintf("level %d (%s): confirmed off", a.Level, a.Device)
		}
	case groups.SelfFence:
		s.mu.Lock()
		s.logEventLocked(Event{Kind: "self-fence", Node: a.Node, Detail: a.Reason})
		s.mu.Unlock()
		if sf, ok := s.cfg.Agents.(SelfFencer); ok {
			ctx, cancel := context.WithTimeout(context.Background(), time.Until(a.Deadline)+time.Second)
			if err := sf.SelfFence(ctx, a.Node); err != nil {
				s.log.Warn("self-fence command not confirmed; the agent fences itself when it stops hearing a quorate leader", "node", a.Node, "err", err)
			}
			cancel()
		}
		return
	}
	ev.At = s.cfg.Clock.Now()
	logged.At = ev.At
	s.feed(epoch, ev, logged, answered)
}

// stopOrphans stops group resources a node runs that the engine does not
// want there (a run left from before a failover the node slept through).
func (s *Server) stopOrphans(node string, ids []string) {
	for _, id := range ids {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CommandTimeout)
		if _, err := s.cfg.Agents.Stop(ctx, node, id); err != nil {
			s.log.Warn("stopping a group resource that should not run there", "node", node, "workload", id, "err", err)
		}
		cancel()
	}
}

// probe sends one membership probe and reports its outcome.
func (s *Server) probe(p membership.Probe, addr string) {
	err := errors.New("no probe address known for the node")
	if s.cfg.HA.Prober != nil && addr != "" {
		ctx, cancel := context.WithTimeout(context.Background(), p.Deadline.Sub(p.At))
		err = s.cfg.HA.Prober.Probe(ctx, p.Node, addr)
		cancel()
	}
	s.mu.Lock()
	delete(s.ha.probing, p.Node)
	ts := s.members.ProbeResult(p.Node, err == nil, s.cfg.Clock.Now())
	if err != nil {
		s.logEventLocked(Event{Kind: "probe", Node: p.Node, Detail: "probe failed: " + err.Error()})
	}
	acts := s.transitionsLocked(ts)
	s.mu.Unlock()
	s.dispatch(acts)
}

// BeaconInterval is how often the leader tells the agents it leads and
// whether it is quorate.
const BeaconInterval = 250 * time.Millisecond

// Beacon returns the leader's beacon, or false if this server does not lead.
func (s *Server) Beacon() (wire.Beacon, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.leader || s.ha.engine == nil {
		return wire.Beacon{}, false
	}
	name := s.cfg.Name
	if name == "" {
		name = "baton-server"
	}
	return wire.Beacon{V: wire.Version, Leader: name, Epoch: s.epoch, Quorate: s.ha.status.Quorate,
		SentAt: s.cfg.Clock.Now(), IntervalMS: BeaconInterval.Milliseconds()}, true
}

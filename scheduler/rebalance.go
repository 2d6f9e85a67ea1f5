package scheduler

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/batonhq/baton/failover/membership"
	"github.com/batonhq/baton/migrate"
	"github.com/batonhq/baton/placement"
	"github.com/batonhq/baton/placement/rebalance"
	"github.com/batonhq/baton/scheduler/store"
	"github.com/batonhq/baton/wire"
)

// rebalanceEvery spaces the rebalancer's runs on the server's tick.
const rebalanceEvery = time.Second

// maxRebalanceEvents bounds the events kept for the API.
const maxRebalanceEvents = 200

// RebalanceEvent is something the rebalancer or a drain did or saw: a node
// turning hot or cool, a move started, ended or refused, a drain asked for,
// finished or lifted. Every event is also logged.
type RebalanceEvent struct {
	At           time.Time `json:"at"`
	Kind         string    `json:"kind"`
	Node         string    `json:"node,omitempty"`
	Workload     string    `json:"workload,omitempty"`
	WorkloadName string    `json:"workload_name,omitempty"`
	From         string    `json:"from,omitempty"`
	To           string    `json:"to,omitempty"`
	Migration    string    `json:"migration,omitempty"`
	Reason       string    `json:"reason"`
}

// Event kinds.
const (
	EventHot          = "node-hot"
	EventCool         = "node-cool"
	EventMove         = "move"          // a rebalancing migration started
	EventDrainMove    = "drain-move"    // a drain's migration started
	EventDrainRestart = "drain-restart" // a drain restarts a workload elsewhere
	EventMoveRefused  = "move-refused"  // the scheduler refused a planned move
	EventMoveDone     = "move-done"     // a planned migration ended done
	EventMoveFailed   = "move-failed"   // a planned migration failed and rolled back
	EventDrain        = "drain"
	EventDrained      = "drained" // the drained node runs nothing any more
	EventUndrain      = "undrain"
)

// RebalancePlan is the body of GET /v1/rebalance/plan.
type RebalancePlan struct {
	rebalance.Plan
	At       time.Time `json:"at"`
	Watching string    `json:"watching"`
}

// rebalancer is the server's rebalancing and drain state, guarded by
// Server.mu.
type rebalancer struct {
	policy  rebalance.Policy
	tracker *rebalance.Tracker
	nodes   store.NodeStore
	drained map[string]time.Time // node → when it was drained
	empty   map[string]bool      // drained nodes announced empty
	// drainFailures counts the failed live migrations of a workload off
	// its drained node; at Policy.MaxDrainAttempts it is restarted instead.
	drainFailures map[string]int
	planned       map[string]string // migration id → kind, for migrations the rebalancer started
	restarting    map[string]bool   // workloads a drain is restarting
	lastRun       time.Time
	events        []RebalanceEvent
}

// rbLocked returns the rebalancer state, creating it at first use.
func (s *Server) rbLocked() *rebalancer {
	if s.rb != nil {
		return s.rb
	}
	pol := s.cfg.Rebalance
	if pol.Level == "" {
		pol, _ = rebalance.PolicyFor(rebalance.DefaultLevel)
	}
	nodes := s.cfg.NodeStore
	if nodes == nil {
		nodes = store.NewMemoryNodes()
	}
	s.rb = &rebalancer{policy: pol, tracker: rebalance.NewTracker(), nodes: nodes,
		drained: map[string]time.Time{}, empty: map[string]bool{}, drainFailures: map[string]int{},
		planned: map[string]string{}, restarting: map[string]bool{}}
	return s.rb
}

// eventLocked records and logs an event.
func (s *Server) eventLocked(e RebalanceEvent) {
	rb := s.rbLocked()
	if e.At.IsZero() {
		e.At = s.cfg.Clock.Now()
	}
	rb.events = append(rb.events, e)
	if len(rb.events) > maxRebalanceEvents {
		rb.events = slices.Delete(rb.events, 0, len(rb.events)-maxRebalanceEvents)
	}
	s.log.Info("rebalance event", "kind", e.Kind, "node", e.Node, "workload", e.WorkloadName,
		"from", e.From, "to", e.To, "migration", e.Migration, "reason", e.Reason)
}

// RebalanceEvents lists the latest events, oldest first.
func (s *Server) RebalanceEvents() []RebalanceEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.rbLocked().events)
}

// observeHeatLocked feeds a heartbeat to the heat tracker.
func (s *Server) observeHeatLocked(hb wire.Heartbeat) {
	rb := s.rbLocked()
	h, changed := rb.tracker.Observe(hb.Node,
		placement.Resources{CPUMillis: hb.Capacity.CPUMillis, MemoryMB: hb.Capacity.MemoryMB},
		placement.Resources{CPUMillis: hb.Headroom.CPUMillis, MemoryMB: hb.Headroom.MemoryMB}, rb.policy)
	if !changed {
		return
	}
	e := RebalanceEvent{Kind: EventCool, Node: hb.Node, Reason: h.Why}
	if h.Hot {
		e.Kind = EventHot
	}
	s.eventLocked(e)
}

// migrationReserveLocked is what an in-flight migration of w holds on its
// target: its requests, and at least the resident memory its nodes report.
func (s *Server) migrationReserveLocked(w store.Workload) placement.Resources {
	r := placement.Resources{CPUMillis: w.Resources.CPUMillis, MemoryMB: w.Resources.MemoryMB}
	for _, node := range []string{w.Node, w.MigrationTarget} {
		for _, st := range s.reports[node].hb.Workloads {
			if st.ID == w.ID {
				r.MemoryMB = max(r.MemoryMB, mibCeil(st.RSSBytes))
			}
		}
	}
	return r
}

func mibCeil(b int64) int64 { return (b + 1<<20 - 1) >> 20 }

// Rebalance runs the rebalancer once if this server leads and the last run
// is rebalanceEvery old: it notes how the migrations it started ended, plans,
// and starts the planned moves. Run calls it on every tick.
func (s *Server) Rebalance(ctx context.Context) {
	now := s.cfg.Clock.Now()
	s.mu.Lock()
	rb := s.rbLocked()
	if !s.leader || now.Sub(rb.lastRun) < rebalanceEvery {
		s.mu.Unlock()
		return
	}
	rb.lastRun = now
	s.collectPlannedLocked()
	in := s.rebalanceInputLocked(now)
	s.mu.Unlock()
	s.carryOutPlan(ctx, rebalance.Decide(in))
}

// PlanRebalance is a dry run: the moves the rebalancer would make now.
func (s *Server) PlanRebalance() RebalancePlan {
	now := s.cfg.Clock.Now()
	s.mu.Lock()
	in := s.rebalanceInputLocked(now)
	s.mu.Unlock()
	return RebalancePlan{Plan: rebalance.Decide(in), At: now, Watching: in.Policy.Watched()}
}

// collectPlannedLocked turns the ends of the migrations the rebalancer
// started into events, and counts failed drain migrations.
func (s *Server) collectPlannedLocked() {
	rb := s.rbLocked()
	for id, kind := range rb.planned {
		run, ok := s.migrations[id]
		if !ok {
			delete(rb.planned, id)
			continue
		}
		v := run.view
		if v.EndedAt.IsZero() {
			continue
		}
		delete(rb.planned, id)
		e := RebalanceEvent{At: v.EndedAt, Kind: EventMoveDone, Workload: v.Workload, WorkloadName: v.WorkloadName,
			From: v.Source, To: v.Target, Migration: v.ID, Reason: "frozen " + time.Duration(v.FrozenMS*float64(time.Millisecond)).Round(time.Millisecond).String()}
		if migrate.Phase(v.State) != migrate.PhaseDone {
			e.Kind, e.Reason = EventMoveFailed, v.State+": "+v.Reason
			if kind == EventDrainMove {
				rb.drainFailures[v.Workload]++
			}
		}
		s.eventLocked(e)
	}
	for node := range rb.drained {
		empty := len(s.liveOnLocked(node)) == 0
		if empty && !rb.empty[node] {
			s.eventLocked(RebalanceEvent{Kind: EventDrained, Node: node, Reason: "no workload runs on " + node + " any more: it can be taken down"})
		}
		rb.empty[node] = empty
	}
}

// liveOnLocked lists the ids of the workloads placed on node that have not
// exited, including those migrating away from it.
func (s *Server) liveOnLocked(node string) []string {
	var out []string
	for id := range s.byNode[node] {
		if w := s.workloads[id]; !exited(w.State) {
			out = append(out, id)
		}
	}
	return out
}

// rebalanceInputLocked gathers the rebalancer's view of the cluster.
func (s *Server) rebalanceInputLocked(now time.Time) rebalance.Input {
	rb := s.rbLocked()
	in := rebalance.Input{Now: now, Policy: rb.policy}
	reserved, names := s.reservationsLocked()
	rss := map[string]int64{} // workload id → resident MiB, the most any node reports
	for _, r := range s.reports {
		for _, st := range r.hb.Workloads {
			rss[st.ID] = max(rss[st.ID], mibCeil(st.RSSBytes))
		}
	}
	for _, m := range s.members.List() {
		hb := s.reports[m.Name].hb
		_, drained := rb.drained[m.Name]
		in.Nodes = append(in.Nodes, rebalance.Node{
			Name: m.Name, State: string(m.State), Ready: m.State == membership.Running, Drained: drained,
			Labels:     hb.Labels,
			Capacity:   placement.Resources{CPUMillis: hb.Capacity.CPUMillis, MemoryMB: hb.Capacity.MemoryMB},
			Headroom:   placement.Resources{CPUMillis: hb.Headroom.CPUMillis, MemoryMB: hb.Headroom.MemoryMB},
			Reserved:   reserved[m.Name],
			Workloads:  names[m.Name],
			CanMigrate: hb.Features != nil && hb.Features.CRIU,
			Heat:       rb.tracker.Heat(m.Name),
		})
	}
	lastMoved := map[string]time.Time{}
	for _, id := range s.migrationOrder {
		v := s.migrations[id].view
		lastMoved[v.Workload] = v.StartedAt
		switch {
		case v.EndedAt.IsZero():
			in.Pending = append(in.Pending, rebalance.Pending{Workload: v.Workload, Source: v.Source, Target: v.Target,
				MemoryMB: rss[v.Workload], CPUMillis: s.workloads[v.Workload].Resources.CPUMillis, InFlight: true})
		case migrate.Phase(v.State) == migrate.PhaseDone && !s.reportedSinceLocked(v.Target, v.EndedAt):
			in.Pending = append(in.Pending, rebalance.Pending{Workload: v.Workload, Source: v.Source, Target: v.Target,
				MemoryMB: rss[v.Workload], CPUMillis: s.workloads[v.Workload].Resources.CPUMillis})
		}
	}
	for _, w := range s.workloads {
		if w.Desired != store.DesiredRunning || w.State != wire.StateRunning || w.Migration != "" || rb.restarting[w.ID] {
			continue
		}
		in.Workloads = append(in.Workloads, rebalance.Workload{
			ID: w.ID, Name: w.Name, Node: w.Node,
			Requests: placement.Resources{CPUMillis: w.Resources.CPUMillis, MemoryMB: w.Resources.MemoryMB},
			RSSMB:    rss[w.ID], Priority: w.Priority,
			Constraints: placement.Constraints{Nodes: w.Constraints.Nodes, AvoidNodes: w.Constraints.AvoidNodes,
				Labels: w.Constraints.Labels, AntiAffinity: w.Constraints.AntiAffinity},
			LastMoved: lastMoved[w.ID], DrainFailures: rb.drainFailures[w.ID],
		})
	}
	return in
}

// reportedSinceLocked says whether node's measured headroom shows what
// happened at t: its agent measures just before it sends, so the first
// report after t may predate it; two intervals after t one surely does not.
func (s *Server) reportedSinceLocked(node string, t time.Time) bool {
	m, ok := s.members.Get(node)
	if !ok {
		return true
	}
	interval := time.Duration(s.reports[node].hb.IntervalMS) * time.Millisecond
	return m.LastHeartbeat.After(t.Add(2 * interval))
}

// carryOutPlan starts the plan's moves.
func (s *Server) carryOutPlan(ctx context.Context, p rebalance.Plan) {
	for _, m := range p.Moves {
		if m.Kind == rebalance.KindDrainRestart {
			s.mu.Lock()
			s.rbLocked().restarting[m.Workload] = true
			s.eventLocked(RebalanceEvent{Kind: EventDrainRestart, Workload: m.Workload, WorkloadName: m.WorkloadName, From: m.From, To: m.To, Reason: m.Reason})
			s.mu.Unlock()
			go s.restartElsewhere(m)
			continue
		}
		kind := EventMove
		if m.Kind == rebalance.KindDrain {
			kind = EventDrainMove
		}
		mv, err := s.StartMigration(ctx, m.Workload, MigrationRequest{To: m.To})
		s.mu.Lock()
		if err != nil {
			if kind == EventDrainMove && errors.Is(err, ErrUnsupported) {
				// It cannot move live: the next run restarts it instead.
				s.rbLocked().drainFailures[m.Workload] = max(s.rbLocked().policy.MaxDrainAttempts, 1)
			}
			s.eventLocked(RebalanceEvent{Kind: EventMoveRefused, Workload: m.Workload, WorkloadName: m.WorkloadName,
				From: m.From, To: m.To, Reason: err.Error()})
		} else {
			s.rbLocked().planned[mv.ID] = kind
			s.eventLocked(RebalanceEvent{Kind: kind, Workload: m.Workload, WorkloadName: m.WorkloadName,
				From: m.From, To: m.To, Migration: mv.ID, Reason: m.Reason})
		}
		s.mu.Unlock()
	}
}

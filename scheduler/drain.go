package scheduler

import (
	"context"
	"errors"
	"fmt"

	"github.com/batonhq/baton/failover/groups"
	"github.com/batonhq/baton/failover/membership"
	"github.com/batonhq/baton/placement/rebalance"
	"github.com/batonhq/baton/scheduler/store"
	"github.com/batonhq/baton/wire"
)

// Drain states of a node, as NodeView.Drain shows them.
const (
	DrainDraining = "draining" // drained, workloads still on it
	DrainDrained  = "drained"  // drained and empty
)

// DrainNode marks a node unschedulable and has the rebalancer move every
// workload off it, live where possible, restarting it elsewhere where not.
// The drain is stored, so it survives a server restart. Draining a drained
// node again changes nothing.
func (s *Server) DrainNode(ctx context.Context, name string) (NodeView, error) {
	now := s.cfg.Clock.Now()
	s.mu.Lock()
	if err := s.notLeaderLocked(); err != nil {
		s.mu.Unlock()
		return NodeView{}, err
	}
	if _, ok := s.members.Get(name); !ok {
		s.mu.Unlock()
		return NodeView{}, fmt.Errorf("%w: node %q: no agent of that name has reported (see GET /v1/nodes)", ErrNotFound, name)
	}
	rb := s.rbLocked()
	if _, ok := rb.drained[name]; !ok {
		if err := rb.nodes.PutNode(ctx, store.Node{Name: name, Drained: true, DrainedAt: now}); err != nil {
			s.mu.Unlock()
			return NodeView{}, fmt.Errorf("scheduler: draining node %s: %w", name, err)
		}
		rb.drained[name] = now
		rb.empty[name] = false
		s.placeDirtyLocked(name)
		n := len(s.liveOnLocked(name))
		s.eventLocked(RebalanceEvent{Kind: EventDrain, Node: name,
			Reason: fmt.Sprintf("drain asked for: no new workload goes to %s; its %d workloads move off", name, n)})
	}
	// Its resource groups move off in order (stop here, start elsewhere).
	var acts []groups.Action
	if m, _ := s.members.Get(name); m.State == membership.Running {
		acts = s.nodeEventLocked(membership.Transition{Node: name, To: m.State, At: now, Reason: "drained"})
	}
	s.mu.Unlock()
	s.dispatch(acts)
	return s.Node(name) // the next Rebalance starts the moves
}

// UndrainNode makes a drained node schedulable again. Workloads that left it
// stay where they went.
func (s *Server) UndrainNode(ctx context.Context, name string) (NodeView, error) {
	s.mu.Lock()
	if err := s.notLeaderLocked(); err != nil {
		s.mu.Unlock()
		return NodeView{}, err
	}
	rb := s.rbLocked()
	_, drained := rb.drained[name]
	if _, known := s.members.Get(name); !known && !drained {
		s.mu.Unlock()
		return NodeView{}, fmt.Errorf("%w: node %q", ErrNotFound, name)
	}
	if drained {
		if err := rb.nodes.DeleteNode(ctx, name); err != nil {
			s.mu.Unlock()
			return NodeView{}, fmt.Errorf("scheduler: undraining node %s: %w", name, err)
		}
		delete(rb.drained, name)
		delete(rb.empty, name)
		s.placeDirtyLocked(name)
		for id := range s.byNode[name] {
			delete(rb.drainFailures, id)
		}
		s.eventLocked(RebalanceEvent{Kind: EventUndrain, Node: name, Reason: name + " takes new workloads again"})
	}
	var acts []groups.Action
	if m, _ := s.members.Get(name); drained && m.State == membership.Running {
		acts = s.nodeEventLocked(membership.Transition{Node: name, To: m.State, At: s.cfg.Clock.Now(), Reason: "undrained"})
	}
	s.mu.Unlock()
	s.dispatch(acts)
	return s.Node(name)
}

// loadNodeRecords reads the stored drains (Load calls it).
func (s *Server) loadNodeRecords(ctx context.Context) error {
	s.mu.Lock()
	nodes := s.rbLocked().nodes
	s.mu.Unlock()
	list, err := nodes.ListNodes(ctx)
	if err != nil {
		return fmt.Errorf("scheduler: loading node records: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rb := s.rbLocked()
	clear(rb.drained)
	for _, n := range list {
		if n.Drained {
			rb.drained[n.Name] = n.DrainedAt
		}
	}
	s.placeResetLocked()
	return nil
}

// drainedLocked says whether node is drained.
func (s *Server) drainedLocked(node string) bool {
	_, ok := s.rbLocked().drained[node]
	return ok
}

// drainStateLocked is NodeView.Drain for node with live workloads on it.
func (s *Server) drainStateLocked(node string, workloads int) string {
	switch {
	case !s.drainedLocked(node):
		return ""
	case workloads > 0:
		return DrainDraining
	}
	return DrainDrained
}

// restartElsewhere carries out a drain's restart: the workload's record
// moves to the target first (so reconciliation stops the old copy, never
// restarts it there), the old copy is stopped, then the new one started.
func (s *Server) restartElsewhere(m rebalance.Move) {
	defer func() {
		s.mu.Lock()
		delete(s.rbLocked().restarting, m.Workload)
		s.mu.Unlock()
	}()
	ctx := context.Background()
	s.mu.Lock()
	w, ok := s.workloads[m.Workload]
	if !ok || w.Node != m.From || w.Desired != store.DesiredRunning || w.Migration != "" || s.inflight[w.ID] {
		s.mu.Unlock()
		return
	}
	old := w
	w.Node, w.State, w.HostPID, w.Error, w.UpdatedAt = m.To, wire.StateStarting, 0, "", s.cfg.Clock.Now()
	s.inflight[w.ID] = true
	s.saveLocked(ctx, w)
	s.mu.Unlock()

	cctx, cancel := context.WithTimeout(ctx, s.cfg.CommandTimeout)
	_, err := s.cfg.Agents.Stop(cctx, m.From, w.ID)
	cancel()
	if err != nil {
		// Starting it now could run two copies: the record goes back to
		// the old node, whose reports decide, and a later run retries.
		s.mu.Lock()
		delete(s.inflight, w.ID)
		if cur, ok := s.workloads[w.ID]; ok && cur.Node == m.To && cur.Desired == store.DesiredRunning {
			old.UpdatedAt = s.cfg.Clock.Now()
			s.saveLocked(ctx, old)
		}
		s.eventLocked(RebalanceEvent{Kind: EventMoveFailed, Workload: w.ID, WorkloadName: w.Name, From: m.From, To: m.To,
			Reason: "stop on " + m.From + " not confirmed: " + err.Error()})
		s.mu.Unlock()
		return
	}
	cctx, cancel = context.WithTimeout(ctx, s.cfg.CommandTimeout)
	st, err := s.cfg.Agents.Start(cctx, m.To, w.Spec())
	cancel()
	s.mu.Lock()
	delete(s.inflight, w.ID)
	s.mu.Unlock()
	rec := s.recordStart(ctx, w.ID, m.To, st, err)
	s.mu.Lock()
	e := RebalanceEvent{Kind: EventMoveDone, Workload: w.ID, WorkloadName: w.Name, From: m.From, To: m.To, Reason: "restarted: " + rec.State}
	if err != nil && errors.Is(err, ErrAgent) {
		e.Kind, e.Reason = EventMoveFailed, "restart on "+m.To+" failed: "+err.Error()
	}
	s.eventLocked(e)
	s.mu.Unlock()
}

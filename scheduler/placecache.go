package scheduler

import (
	"cmp"

	"github.com/batonhq/baton/failover/membership"
	"github.com/batonhq/baton/placement"
)

// The server's placement view. placementNodesLocked builds every node from
// scratch: membership, the nodes' last reports, drains, and the live
// workloads' reservations summed over every workload. Placing through it
// costs that pass, and the function Place's, at every decision. The server
// keeps a placement.Cluster equal to what it would build instead: each site
// that changes one of those inputs marks the nodes it touched dirty after
// the change, and placementLocked brings only those nodes up to date right
// before a decision, or builds the Cluster anew when the node set changed.
//
//	report (HandleHeartbeat)   ─ the node, and the targets of the
//	                             workloads migrating off it
//	transition (membership)    ─ the node
//	drain, undrain             ─ the node              ──▶ dirty
//	workload cached, uncached  ─ its old and new node
//	                             and migration target
//	Load, loadNodeRecords      ─ everything (rebuild)
//
//	decision ──▶ placementLocked: node set changed? NewCluster from
//	             placementNodesLocked; else Update each dirty node
//	             (placementNodeLocked with reservationOnLocked) ──▶ Place/Plan
//
// A mark comes after its change, never before: a decision in between (the
// group engine places from inside transitionsLocked) would refresh the node
// and clear the mark before the change landed. A node the Cluster lacks (a
// first heartbeat, or a node the group engine's snapshot seeds into
// membership without a transition) fails its Update or changes the member
// count, and either builds the Cluster anew: membership only ever adds
// nodes. placementNodesLocked stays the reference: the tests hold the
// Cluster to one built from it after every step of random runs.

// placeCache is the Cluster and its dirty nodes, guarded by Server.mu.
// Decisions on the Cluster run under Server.mu too, as Update may not run
// concurrently with them.
type placeCache struct {
	cluster *placement.Cluster // nil: build anew at the next decision
	dirty   map[string]bool    // nodes whose inputs changed since the last refresh
	// builds and updates count the Clusters built and the nodes updated,
	// for tests.
	builds, updates int
}

// placeDirtyLocked marks nodes whose placement inputs have just changed.
func (s *Server) placeDirtyLocked(nodes ...string) {
	if s.place.cluster == nil {
		return // built anew anyway
	}
	for _, n := range nodes {
		if n != "" {
			s.place.dirty[n] = true
		}
	}
}

// placeReportLocked marks what a node's new report changes: the node
// (labels, capacity, headroom) and the targets of the workloads migrating
// off it, whose reservation there counts the resident memory the node
// reports (migrationReserveLocked).
func (s *Server) placeReportLocked(node string) {
	if s.place.cluster == nil {
		return
	}
	s.place.dirty[node] = true
	for id := range s.byNode[node] {
		s.placeDirtyLocked(s.workloads[id].MigrationTarget)
	}
}

// placeResetLocked drops the Cluster after a change to many nodes at once
// (a reload): the next decision builds it anew.
func (s *Server) placeResetLocked() {
	s.place.cluster = nil
	clear(s.place.dirty)
}

// placementLocked returns the Cluster up to date with placementNodesLocked.
func (s *Server) placementLocked() *placement.Cluster {
	pc := &s.place
	// Members are only ever added: the same count is the same node set.
	fresh := pc.cluster != nil && pc.cluster.Len() == s.members.Len()
	for name := range pc.dirty {
		if !fresh {
			break
		}
		m, ok := s.members.Get(name)
		if !ok {
			continue // a workload's node that never reported: not a placement node
		}
		r, names := s.reservationOnLocked(name)
		fresh = pc.cluster.Update(s.placementNodeLocked(m, r, names)) == nil
		pc.updates++
	}
	clear(pc.dirty)
	if !fresh {
		c, err := placement.NewCluster(s.placementNodesLocked())
		if err != nil {
			panic("scheduler: membership listed a node twice: " + err.Error()) // names are map keys
		}
		pc.cluster = c
		pc.builds++
	}
	return pc.cluster
}

// placementNodeLocked is placement's view of member m, which holds reserved
// for the live workloads named workloads.
func (s *Server) placementNodeLocked(m membership.Member, reserved placement.Resources, workloads []string) placement.Node {
	hb := s.reports[m.Name].hb
	return placement.Node{
		Name:      m.Name,
		Ready:     m.State == membership.Running && !s.drainedLocked(m.Name),
		State:     cmp.Or(s.drainStateLocked(m.Name, 1), string(m.State)),
		Labels:    hb.Labels,
		Capacity:  placement.Resources{CPUMillis: hb.Capacity.CPUMillis, MemoryMB: hb.Capacity.MemoryMB},
		Headroom:  placement.Resources{CPUMillis: hb.Headroom.CPUMillis, MemoryMB: hb.Headroom.MemoryMB},
		Reserved:  reserved,
		Workloads: workloads,
	}
}

// reservationOnLocked is reservationsLocked for one node: what the live
// workloads placed on node or migrating to it hold there, found through the
// per-node indexes instead of a pass over every workload.
func (s *Server) reservationOnLocked(node string) (placement.Resources, []string) {
	var sum placement.Resources
	var names []string
	for _, ids := range []map[string]bool{s.byNode[node], s.byTarget[node]} {
		for id := range ids {
			w := s.workloads[id]
			if r, ok := s.heldLocked(w, node); ok {
				sum = addResources(sum, r)
				names = append(names, w.Name)
			}
		}
	}
	return sum, names
}

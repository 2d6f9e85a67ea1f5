package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/batonhq/baton/failover/groups"
	"github.com/batonhq/baton/failover/quorum"
	"github.com/batonhq/baton/wire"
)

// GroupView is a resource group as the API shows it.
type GroupView struct {
	Name      string         `json:"name"`
	State     string         `json:"state"`
	Node      string         `json:"node"`
	Reason    string         `json:"reason"`
	Nodes     []string       `json:"nodes"`
	Failback  string         `json:"failback"`
	UserNode  string         `json:"user_node,omitempty"`
	Failures  map[string]int `json:"failures"`
	Resources []ResourceView `json:"resources"`
}

// ResourceView is one resource of a group.
type ResourceView struct {
	Name    string   `json:"name"`
	Kind    string   `json:"kind"`
	State   string   `json:"state"`
	Command []string `json:"command"`
	// Workload is the id the node agent runs it under.
	Workload string `json:"workload"`
}

// QuorumView is the quorum as the API shows it.
type QuorumView struct {
	Quorate       bool        `json:"quorate"`
	LiveVotes     int         `json:"live_votes"`
	ExpectedVotes int         `json:"expected_votes"`
	Needed        int         `json:"needed"`
	Witness       bool        `json:"witness"`
	WitnessVotes  int         `json:"witness_votes"`
	WaitingForAll bool        `json:"waiting_for_all"`
	Reason        string      `json:"reason"`
	Nodes         []VotesView `json:"nodes"`
}

// VotesView is one node's votes.
type VotesView struct {
	Node  string `json:"node"`
	Votes int    `json:"votes"`
	Live  bool   `json:"live"`
}

func groupView(g groups.GroupInfo) GroupView {
	v := GroupView{
		Name: g.Spec.Name, State: string(g.State), Node: g.Node, Reason: g.Reason, Nodes: g.Spec.Nodes,
		Failback: string(g.Spec.Failback), UserNode: g.UserNode, Failures: g.Failures,
	}
	if v.Nodes == nil {
		v.Nodes = []string{}
	}
	if v.Failback == "" {
		v.Failback = string(groups.FailbackManual)
	}
	if v.Failures == nil {
		v.Failures = map[string]int{}
	}
	for i, r := range g.Spec.Resources {
		var p processSpec
		_ = json.Unmarshal(r.Spec, &p)
		st := groups.ResStopped
		if i < len(g.Resources) {
			st = g.Resources[i]
		}
		v.Resources = append(v.Resources, ResourceView{Name: r.Name, Kind: string(r.Kind), State: string(st),
			Command: p.Command, Workload: groupWorkloadID(g.Spec.Name, r.Name)})
	}
	return v
}

// haLeaderLocked checks that this server leads and its failover is running.
func (s *Server) haLeaderLocked() error {
	if err := s.notLeaderLocked(); err != nil {
		return err
	}
	if s.ha.engine == nil {
		return fmt.Errorf("%w: this server is taking up the lead; retry in a second", ErrNotLeader)
	}
	return nil
}

// userEvent feeds a user's request to the engine and returns the group.
func (s *Server) userEvent(ev groups.Event) (GroupView, error) {
	s.mu.Lock()
	if err := s.haLeaderLocked(); err != nil {
		s.mu.Unlock()
		return GroupView{}, err
	}
	name := ev.Group
	if _, ok := s.ha.engine.Group(name); !ok && ev.Kind != groups.CreateGroup {
		s.mu.Unlock()
		return GroupView{}, fmt.Errorf("%w: group %q", ErrNotFound, name)
	}
	ev.At = s.cfg.Clock.Now()
	s.logEventLocked(Event{Kind: string(ev.Kind), Group: name, Node: ev.Node, Detail: "requested by user"})
	acts := s.handleLocked(ev)
	var view GroupView
	if g, ok := s.ha.engine.Group(name); ok {
		view = groupView(g)
	} else {
		view = GroupView{Name: name, State: string(groups.Deleted), Nodes: []string{}, Failures: map[string]int{}}
	}
	// The engine refuses a move to a node the group may not run on with a
	// state action saying why.
	if ev.Kind == groups.MoveGroup && ev.Node != "" && view.UserNode != ev.Node && view.Node != ev.Node {
		why := "the node is not eligible"
		for _, a := range acts {
			if a.Kind == groups.SetState && a.Group == name && strings.HasPrefix(a.Reason, "move to") {
				why = a.Reason
			}
		}
		s.mu.Unlock()
		s.dispatch(acts)
		return view, fmt.Errorf("%w: group %q: %s", ErrConflict, name, why)
	}
	s.mu.Unlock()
	s.dispatch(acts)
	return view, nil
}

// CreateGroup validates and creates a resource group; the engine places and
// starts it at once if this partition is quorate.
func (s *Server) CreateGroup(_ context.Context, req GroupRequest) (GroupView, error) {
	g, err := req.Group()
	if err != nil {
		return GroupView{}, err
	}
	s.mu.Lock()
	if err := s.haLeaderLocked(); err != nil {
		s.mu.Unlock()
		return GroupView{}, err
	}
	if _, ok := s.ha.engine.Group(g.Name); ok {
		s.mu.Unlock()
		return GroupView{}, fmt.Errorf("%w: group %q exists: delete it first or choose another name", ErrConflict, g.Name)
	}
	s.mu.Unlock()
	return s.userEvent(groups.Event{Kind: groups.CreateGroup, Group: g.Name, Spec: &g})
}

// DeleteGroup stops a group's resources in reverse order, then forgets it.
func (s *Server) DeleteGroup(_ context.Context, name string) (GroupView, error) {
	return s.userEvent(groups.Event{Kind: groups.DeleteGroup, Group: name})
}

// MoveGroup moves a group to node (stop in reverse there, start in order
// here); an empty node clears the user's choice.
func (s *Server) MoveGroup(_ context.Context, name, node string) (GroupView, error) {
	if node != "" {
		if err := wire.ValidNodeName(node); err != nil {
			return GroupView{}, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	return s.userEvent(groups.Event{Kind: groups.MoveGroup, Group: name, Node: node})
}

// ResetGroupFailures forgets a group's failures on node (every node if empty).
func (s *Server) ResetGroupFailures(_ context.Context, name, node string) (GroupView, error) {
	return s.userEvent(groups.Event{Kind: groups.ResetFailures, Group: name, Node: node})
}

// Groups lists the resource groups, by name.
func (s *Server) Groups() ([]GroupView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.haLeaderLocked(); err != nil {
		return nil, err
	}
	out := []GroupView{}
	for _, g := range s.ha.engine.Groups() {
		out = append(out, groupView(g))
	}
	return out, nil
}

// Group returns one resource group.
func (s *Server) Group(name string) (GroupView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.haLeaderLocked(); err != nil {
		return GroupView{}, err
	}
	g, ok := s.ha.engine.Group(name)
	if !ok {
		return GroupView{}, fmt.Errorf("%w: group %q", ErrNotFound, name)
	}
	return groupView(g), nil
}

// FenceNode fences a node now through its fence levels (baton node fence).
// With confirmOff, nothing is fenced: the operator vouches that the node is
// off (powered down by hand), which lets its groups recover elsewhere.
func (s *Server) FenceNode(_ context.Context, node string, confirmOff bool) error {
	if err := wire.ValidNodeName(node); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	s.mu.Lock()
	if err := s.haLeaderLocked(); err != nil {
		s.mu.Unlock()
		return err
	}
	if _, known := s.members.Get(node); !known && !slices.ContainsFunc(s.ha.engine.Nodes(), func(n groups.NodeInfo) bool { return n.Name == node }) {
		s.mu.Unlock()
		return fmt.Errorf("%w: node %q has never been seen", ErrNotFound, node)
	}
	ev := groups.Event{Kind: groups.FenceNode, Node: node, At: s.cfg.Clock.Now(), Reason: "baton node fence"}
	detail := "fence requested by user"
	if confirmOff {
		ev = groups.Event{Kind: groups.Fenced, Node: node, At: ev.At, Level: -1, Reason: "the user confirmed the node is off"}
		detail = "the user confirmed the node is off"
	}
	s.logEventLocked(Event{Kind: "fence", Node: node, Detail: detail})
	acts := s.handleLocked(ev)
	s.mu.Unlock()
	s.dispatch(acts)
	return nil
}

// SetVotes changes a node's votes at run time; the change is persisted and
// applies at once.
func (s *Server) SetVotes(_ context.Context, node string, votes int) (QuorumView, error) {
	if votes < 0 || votes > 1000 {
		return QuorumView{}, fmt.Errorf("%w: votes %d: give 0 to 1000 (0 keeps the node in the cluster without a say in quorum)", ErrInvalid, votes)
	}
	s.mu.Lock()
	if err := s.haLeaderLocked(); err != nil {
		s.mu.Unlock()
		return QuorumView{}, err
	}
	if _, ok := s.ha.votes[node]; !ok {
		s.mu.Unlock()
		return QuorumView{}, fmt.Errorf("%w: node %q has never been seen", ErrNotFound, node)
	}
	if _, err := s.ha.quorum.SetVotes(node, votes); err != nil {
		s.mu.Unlock()
		return QuorumView{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	s.ha.votes[node] = votes
	s.saveQuorumLocked()
	now := s.cfg.Clock.Now()
	s.logEventLocked(Event{At: now, Kind: "votes", Node: node, Detail: fmt.Sprintf("votes set to %d", votes)})
	acts := s.quorumChangedLocked(now)
	view := s.quorumViewLocked()
	s.mu.Unlock()
	s.dispatch(acts)
	return view, nil
}

// Quorum reports the quorum.
func (s *Server) Quorum() (QuorumView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.haLeaderLocked(); err != nil {
		return QuorumView{}, err
	}
	return s.quorumViewLocked(), nil
}

func (s *Server) quorumViewLocked() QuorumView {
	st := s.ha.status
	v := QuorumView{Quorate: st.Quorate, LiveVotes: st.LiveVotes, ExpectedVotes: st.ExpectedVotes, Needed: st.Needed,
		Witness: st.Witness, WitnessVotes: s.cfg.HA.Quorum.WitnessVotes, WaitingForAll: st.WaitingForAll, Reason: st.Reason, Nodes: []VotesView{}}
	for _, n := range s.ha.quorum.Nodes() {
		v.Nodes = append(v.Nodes, VotesView{Node: n.Name, Votes: n.Votes, Live: n.Live})
	}
	return v
}

// Events returns the event log, oldest first, those at or after since.
func (s *Server) Events(since time.Time) []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []Event{}
	for _, e := range s.ha.events {
		if !e.At.Before(since) {
			out = append(out, e)
		}
	}
	return out
}

// quorumStatus is for tests and status: the last evaluated quorum.
func (s *Server) quorumStatus() quorum.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ha.status
}

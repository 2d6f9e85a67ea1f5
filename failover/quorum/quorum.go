package quorum

import (
	"errors"
	"fmt"
	"slices"
)

// ErrUnknownNode is returned when votes are set for a node the tracker does
// not know.
var ErrUnknownNode = errors.New("quorum: unknown node")

// ErrBadVotes is returned for a negative vote count.
var ErrBadVotes = errors.New("quorum: votes must be zero or more")

// Config is the static part of the quorum rule.
type Config struct {
	// ExpectedVotes is the configured number of node votes in the full
	// cluster. The tracker raises it to the total votes of the nodes it
	// knows; zero means "the nodes known".
	ExpectedVotes int
	// WitnessVotes is the vote the witness (quorum disk or witness service)
	// casts for the one partition it is granted to; zero means no witness.
	WitnessVotes int
	// WaitForAll keeps a freshly started cluster inquorate until all the
	// expected node votes have been live at the same time once, so that a
	// half-started cluster does not act on its own (corosync wait_for_all).
	WaitForAll bool
}

// Node is one member's vote as the tracker sees it.
type Node struct {
	Name  string
	Votes int
	Live  bool // reachable from this partition now
}

// Status is the quorum decision with the figures behind it.
type Status struct {
	Quorate       bool
	LiveVotes     int  // votes of the live nodes, plus the witness's if granted
	ExpectedVotes int  // effective expected votes, witness included
	Needed        int  // floor(ExpectedVotes/2)+1
	Witness       bool // the witness's vote counts for this partition
	WaitingForAll bool // WaitForAll holds quorum back
	Reason        string
}

func (s Status) String() string {
	q := "quorate"
	if !s.Quorate {
		q = "not quorate"
	}
	return fmt.Sprintf("%s: %d of %d votes, %d needed (%s)", q, s.LiveVotes, s.ExpectedVotes, s.Needed, s.Reason)
}

// Evaluate applies the quorum rule to a set of nodes. allSeen says whether
// the WaitForAll condition has been met before; Tracker keeps it for you.
func Evaluate(cfg Config, nodes []Node, witnessGranted, allSeen bool) Status {
	known, live := 0, 0
	for _, n := range nodes {
		known += n.Votes
		if n.Live {
			live += n.Votes
		}
	}
	expectedNodes := max(cfg.ExpectedVotes, known)
	st := Status{ExpectedVotes: expectedNodes + max(cfg.WitnessVotes, 0), LiveVotes: live}
	if cfg.WitnessVotes > 0 && witnessGranted {
		st.Witness = true
		st.LiveVotes += cfg.WitnessVotes
	}
	st.Needed = st.ExpectedVotes/2 + 1
	if cfg.WaitForAll && !allSeen && (expectedNodes == 0 || live < expectedNodes) {
		st.WaitingForAll = true
		st.Reason = fmt.Sprintf("waiting for all: %d of %d node votes seen together", live, expectedNodes)
		return st
	}
	st.Quorate = st.LiveVotes >= st.Needed
	switch {
	case st.ExpectedVotes == 0:
		st.Quorate = false
		st.Reason = "no votes"
	case st.Witness:
		st.Reason = fmt.Sprintf("%d node votes and the witness's %d", live, cfg.WitnessVotes)
	case cfg.WitnessVotes > 0:
		st.Reason = fmt.Sprintf("%d node votes, witness not granted", live)
	default:
		st.Reason = fmt.Sprintf("%d node votes", live)
	}
	return st
}

// Tracker holds the votes of a cluster as seen from one partition and the
// wait-for-all latch. It is not safe for concurrent use.
type Tracker struct {
	cfg     Config
	nodes   map[string]*Node
	witness bool
	allSeen bool
}

// New returns a tracker with no nodes.
func New(cfg Config) *Tracker {
	return &Tracker{cfg: cfg, nodes: map[string]*Node{}}
}

// Add makes node known with votes (votes < 0 means the default, 1), dead
// until SetLive. Adding a known node changes nothing.
func (t *Tracker) Add(node string, votes int) Status {
	if _, ok := t.nodes[node]; !ok {
		if votes < 0 {
			votes = 1
		}
		t.nodes[node] = &Node{Name: node, Votes: votes}
	}
	return t.Status()
}

// SetLive records whether node is reachable from this partition; an unknown
// node is added with 1 vote.
func (t *Tracker) SetLive(node string, live bool) Status {
	n, ok := t.nodes[node]
	if !ok {
		n = &Node{Name: node, Votes: 1}
		t.nodes[node] = n
	}
	n.Live = live
	return t.Status()
}

// SetVotes changes node's votes at run time.
func (t *Tracker) SetVotes(node string, votes int) (Status, error) {
	n, ok := t.nodes[node]
	if !ok {
		return t.Status(), fmt.Errorf("setting votes of %q: %w", node, ErrUnknownNode)
	}
	if votes < 0 {
		return t.Status(), fmt.Errorf("setting votes of %q to %d: %w", node, votes, ErrBadVotes)
	}
	n.Votes = votes
	return t.Status(), nil
}

// SetExpected changes the configured expected node votes at run time.
func (t *Tracker) SetExpected(votes int) Status {
	t.cfg.ExpectedVotes = max(votes, 0)
	return t.Status()
}

// Forget removes a node an operator has taken out of the cluster, lowering
// the expected votes.
func (t *Tracker) Forget(node string) Status {
	delete(t.nodes, node)
	return t.Status()
}

// SetWitness records whether the witness has granted its vote to this
// partition. The adapter must make sure the witness grants it to at most one
// partition at a time (a lock or lease with a term).
func (t *Tracker) SetWitness(granted bool) Status {
	t.witness = granted
	return t.Status()
}

// Status evaluates quorum now, latching the wait-for-all condition once met.
func (t *Tracker) Status() Status {
	nodes := t.Nodes()
	st := Evaluate(t.cfg, nodes, t.witness, t.allSeen)
	if t.cfg.WaitForAll && !t.allSeen && !st.WaitingForAll {
		t.allSeen = true
	}
	return st
}

// AllSeen says whether the wait-for-all condition has been met, for an
// adapter to persist so that a new leader does not wait for all again.
func (t *Tracker) AllSeen() bool { return t.allSeen }

// MarkAllSeen restores a persisted AllSeen.
func (t *Tracker) MarkAllSeen() Status {
	t.allSeen = true
	return t.Status()
}

// Nodes returns every known node sorted by name.
func (t *Tracker) Nodes() []Node {
	out := make([]Node, 0, len(t.nodes))
	for _, n := range t.nodes {
		out = append(out, *n)
	}
	slices.SortFunc(out, func(a, b Node) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}

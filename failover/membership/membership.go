package membership

import (
	"fmt"
	"slices"
	"time"
)

// State is a node's membership state.
type State string

// Node states.
const (
	Joining State = "joining" // heartbeats started; not yet trusted with work
	Running State = "running" // heartbeating on time; placement may use it
	Suspect State = "suspect" // missed heartbeats; no new work, not yet failed
	Down    State = "down"    // silent for too long
	Exiting State = "exiting" // announced an orderly leave
)

// Config holds the timing rules. Silence is measured in multiples of the
// node's own heartbeat interval so that a node configured to beat slowly is not
// declared dead by a fast-beating neighbour's rule.
type Config struct {
	// DefaultInterval is assumed for nodes that do not report theirs.
	DefaultInterval time.Duration
	// JoinHeartbeats is how many heartbeats a joining node sends before it runs.
	JoinHeartbeats int
	// SuspectAfter is how many intervals of silence make a running node suspect.
	SuspectAfter float64
	// DownAfter is how many intervals of silence make a node down.
	DownAfter float64
}

// DefaultConfig returns the timing rules used by baton server.
func DefaultConfig() Config {
	return Config{DefaultInterval: time.Second, JoinHeartbeats: 2, SuspectAfter: 3, DownAfter: 6}
}

// Member is what the table knows about one node.
type Member struct {
	Name          string
	State         State
	Since         time.Time     // when State was entered
	LastHeartbeat time.Time     // zero if it never beat
	Interval      time.Duration // the node's reported heartbeat interval
	beats         int           // heartbeats since it last (re)joined
}

// Transition is one state change, with why it happened.
type Transition struct {
	Node   string
	From   State // empty for a node seen for the first time
	To     State
	At     time.Time
	Reason string
}

func (t Transition) String() string {
	from := string(t.From)
	if from == "" {
		from = "new"
	}
	return fmt.Sprintf("%s %s→%s (%s)", t.Node, from, t.To, t.Reason)
}

// Table is the membership state of every node seen. It is not safe for
// concurrent use; the scheduler guards it with its own lock.
type Table struct {
	cfg     Config
	members map[string]*Member
}

// NewTable returns an empty table. Zero fields of cfg take DefaultConfig values.
func NewTable(cfg Config) *Table {
	def := DefaultConfig()
	if cfg.DefaultInterval <= 0 {
		cfg.DefaultInterval = def.DefaultInterval
	}
	if cfg.JoinHeartbeats <= 0 {
		cfg.JoinHeartbeats = def.JoinHeartbeats
	}
	if cfg.SuspectAfter <= 0 {
		cfg.SuspectAfter = def.SuspectAfter
	}
	if cfg.DownAfter <= cfg.SuspectAfter {
		cfg.DownAfter = max(def.DownAfter, cfg.SuspectAfter*2)
	}
	return &Table{cfg: cfg, members: map[string]*Member{}}
}

func (t *Table) set(m *Member, to State, now time.Time, reason string, out []Transition) []Transition {
	if m.State == to {
		return out
	}
	out = append(out, Transition{Node: m.Name, From: m.State, To: to, At: now, Reason: reason})
	m.State, m.Since = to, now
	return out
}

// Heartbeat records a heartbeat from node, which beats every interval (zero
// means the configured default).
func (t *Table) Heartbeat(node string, interval time.Duration, now time.Time) []Transition {
	if interval <= 0 {
		interval = t.cfg.DefaultInterval
	}
	var out []Transition
	m, ok := t.members[node]
	if !ok {
		m = &Member{Name: node}
		t.members[node] = m
		out = t.set(m, Joining, now, "first heartbeat", out)
	}
	m.LastHeartbeat, m.Interval = now, interval
	switch m.State {
	case Down, Exiting:
		m.beats = 0
		out = t.set(m, Joining, now, "heartbeat after "+string(m.State), out)
	case Suspect:
		out = t.set(m, Running, now, "heartbeat resumed", out)
	}
	m.beats++
	if m.State == Joining && m.beats >= t.cfg.JoinHeartbeats {
		out = t.set(m, Running, now, fmt.Sprintf("%d heartbeats", m.beats), out)
	}
	return out
}

// Leave records an orderly leave announced by node.
func (t *Table) Leave(node string, now time.Time) []Transition {
	m, ok := t.members[node]
	if !ok {
		return nil
	}
	return t.set(m, Exiting, now, "left in order", nil)
}

// Tick applies the silence rules at time now.
func (t *Table) Tick(now time.Time) []Transition {
	var out []Transition
	for _, name := range t.names() {
		m := t.members[name]
		silent := now.Sub(m.LastHeartbeat)
		suspectAt := time.Duration(t.cfg.SuspectAfter * float64(m.Interval))
		downAt := time.Duration(t.cfg.DownAfter * float64(m.Interval))
		switch {
		case m.State == Down:
		case silent >= downAt:
			out = t.set(m, Down, now, fmt.Sprintf("no heartbeat for %s", silent.Round(time.Millisecond)), out)
		case silent >= suspectAt && (m.State == Running || m.State == Joining):
			out = t.set(m, Suspect, now, fmt.Sprintf("no heartbeat for %s", silent.Round(time.Millisecond)), out)
		}
	}
	return out
}

// Get returns the member called name.
func (t *Table) Get(name string) (Member, bool) {
	m, ok := t.members[name]
	if !ok {
		return Member{}, false
	}
	return *m, true
}

// List returns every member, sorted by name.
func (t *Table) List() []Member {
	out := make([]Member, 0, len(t.members))
	for _, name := range t.names() {
		out = append(out, *t.members[name])
	}
	return out
}

func (t *Table) names() []string {
	names := make([]string, 0, len(t.members))
	for n := range t.members {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

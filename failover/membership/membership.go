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
	// DownAfter is how many intervals of silence make a node down. With
	// RequireProbe it applies only to exiting nodes (an orderly leave needs
	// no evidence); a suspect node goes down only when a probe fails.
	DownAfter float64
	// RequireProbe declares a node down only on evidence: when a node
	// becomes suspect the table asks for a direct probe (Step returns a
	// Probe), and the node goes down only when the caller reports the probe
	// failed (ProbeResult) or no answer came within ProbeTimeout. A node
	// whose probe answers stays suspect (no new work, nothing failed over)
	// and is probed again every ProbeEvery until it beats or a probe fails.
	// False keeps the silence-only rule of DownAfter.
	RequireProbe bool
	// ProbeTimeout is how long a probe may go unanswered before it counts
	// as failed.
	ProbeTimeout time.Duration
	// ProbeEvery is how long after an answered probe a still-silent
	// suspect node is probed again.
	ProbeEvery time.Duration
}

// DefaultConfig returns the timing rules used by baton server today:
// silence alone, 1 s heartbeats, suspect after 3 s, down after 6 s. Its probe
// fields only fill in zeros; RequireProbe stays off.
func DefaultConfig() Config {
	return Config{DefaultInterval: time.Second, JoinHeartbeats: 2, SuspectAfter: 3, DownAfter: 6,
		ProbeTimeout: 300 * time.Millisecond, ProbeEvery: 500 * time.Millisecond}
}

// FailoverConfig returns the timing rules for failover on evidence, sized for
// a node's death to be confirmed within about 1.1 s so that fencing and a
// restart elsewhere fit in a 2 s budget: 250 ms heartbeats, suspect after 3
// missed (750 ms), then a direct probe that must answer within 300 ms. Ticks
// must come at least every 50 ms for these bounds to hold.
func FailoverConfig() Config {
	return Config{DefaultInterval: 250 * time.Millisecond, JoinHeartbeats: 2, SuspectAfter: 3, DownAfter: 6,
		RequireProbe: true, ProbeTimeout: 300 * time.Millisecond, ProbeEvery: 500 * time.Millisecond}
}

// Member is what the table knows about one node.
type Member struct {
	Name          string
	State         State
	Since         time.Time     // when State was entered
	LastHeartbeat time.Time     // zero if it never beat
	Interval      time.Duration // the node's reported heartbeat interval
	// ProbeSent is when the outstanding probe was asked for (zero if none).
	ProbeSent time.Time
	// ProbeAnswered is when a probe last answered while the node was silent.
	ProbeAnswered time.Time
	beats         int // heartbeats since it last (re)joined
}

// Probe asks the caller to check node directly (e.g. a TCP or ICMP probe of
// its agent on a path other than the heartbeat) and to report the outcome
// with ProbeResult before Deadline; no answer by then counts as failed.
type Probe struct {
	Node     string
	At       time.Time
	Deadline time.Time
	Reason   string
}

func (p Probe) String() string {
	return fmt.Sprintf("probe %s by %s (%s)", p.Node, p.Deadline.Sub(p.At), p.Reason)
}

// Update is what one step of the table produced.
type Update struct {
	Transitions []Transition
	Probes      []Probe
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
	sorted  []string // cache of names()
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
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = def.ProbeTimeout
	}
	if cfg.ProbeEvery <= 0 {
		cfg.ProbeEvery = def.ProbeEvery
	}
	return &Table{cfg: cfg, members: map[string]*Member{}}
}

func (t *Table) set(m *Member, to State, now time.Time, reason string, out []Transition) []Transition {
	if m.State == to {
		return out
	}
	out = append(out, Transition{Node: m.Name, From: m.State, To: to, At: now, Reason: reason})
	m.State, m.Since = to, now
	m.ProbeSent, m.ProbeAnswered = time.Time{}, time.Time{}
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

// Tick applies the silence rules at time now. With RequireProbe, use Step
// instead: Tick drops the probes it asks for.
func (t *Table) Tick(now time.Time) []Transition {
	return t.Step(now).Transitions
}

// Step applies the silence and probe rules at time now and returns the
// transitions and the probes the caller must now send.
func (t *Table) Step(now time.Time) Update {
	var up Update
	for _, name := range t.names() {
		m := t.members[name]
		silent := now.Sub(m.LastHeartbeat)
		suspectAt := time.Duration(t.cfg.SuspectAfter * float64(m.Interval))
		downAt := time.Duration(t.cfg.DownAfter * float64(m.Interval))
		// The reason is formatted only for a change: Step runs every 50 ms
		// over every node, and most steps change nothing.
		quiet := func() string { return fmt.Sprintf("no heartbeat for %s", silent.Round(time.Millisecond)) }
		switch {
		case m.State == Down:
		case t.cfg.RequireProbe && m.State != Exiting:
			if silent >= suspectAt && (m.State == Running || m.State == Joining) {
				up.Transitions = t.set(m, Suspect, now, quiet(), up.Transitions)
			}
			if m.State != Suspect {
				continue
			}
			switch {
			case !m.ProbeSent.IsZero() && now.Sub(m.ProbeSent) >= t.cfg.ProbeTimeout:
				up.Transitions = t.set(m, Down, now, fmt.Sprintf("%s and probe unanswered for %s", quiet(), now.Sub(m.ProbeSent).Round(time.Millisecond)), up.Transitions)
			case m.ProbeSent.IsZero() && (m.ProbeAnswered.IsZero() || now.Sub(m.ProbeAnswered) >= t.cfg.ProbeEvery):
				m.ProbeSent = now
				up.Probes = append(up.Probes, Probe{Node: m.Name, At: now, Deadline: now.Add(t.cfg.ProbeTimeout), Reason: quiet()})
			}
		case silent >= downAt:
			up.Transitions = t.set(m, Down, now, quiet(), up.Transitions)
		case silent >= suspectAt && (m.State == Running || m.State == Joining):
			up.Transitions = t.set(m, Suspect, now, quiet(), up.Transitions)
		}
	}
	return up
}

// ProbeResult records the outcome of the probe asked for node: ok means the
// node answered (it is alive but slow to beat, so it is not failed over); a
// failed probe of a suspect node declares it down. A result with no probe
// outstanding is ignored.
func (t *Table) ProbeResult(node string, ok bool, now time.Time) []Transition {
	m, found := t.members[node]
	if !found || m.State != Suspect || m.ProbeSent.IsZero() {
		return nil
	}
	sent := m.ProbeSent
	m.ProbeSent = time.Time{}
	if ok {
		m.ProbeAnswered = now
		return nil
	}
	return t.set(m, Down, now, fmt.Sprintf("no heartbeat for %s and probe failed after %s",
		now.Sub(m.LastHeartbeat).Round(time.Millisecond), now.Sub(sent).Round(time.Millisecond)), nil)
}

// Get returns the member called name.
func (t *Table) Get(name string) (Member, bool) {
	m, ok := t.members[name]
	if !ok {
		return Member{}, false
	}
	return *m, true
}

// Len is the number of members. Members are only ever added, so a caller
// that knew Len members knows them all while Len stays the same.
func (t *Table) Len() int { return len(t.members) }

// List returns every member, sorted by name.
func (t *Table) List() []Member {
	out := make([]Member, 0, len(t.members))
	for _, name := range t.names() {
		out = append(out, *t.members[name])
	}
	return out
}

// names returns the members' names sorted, kept between calls: members are
// only ever added, and Step asks for them every 50 ms.
func (t *Table) names() []string {
	if len(t.sorted) != len(t.members) {
		t.sorted = t.sorted[:0]
		for n := range t.members {
			t.sorted = append(t.sorted, n)
		}
		slices.Sort(t.sorted)
	}
	return t.sorted
}

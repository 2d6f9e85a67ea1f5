package groups

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Config holds the engine's cluster-wide rules.
type Config struct {
	// FenceLevels are each node's fence devices, tried in order; a node
	// without an entry uses DefaultFenceLevels.
	FenceLevels        map[string][]string
	DefaultFenceLevels []string
	// SelfFenceWait is how long after a node is declared down its groups may
	// be recovered elsewhere without a fence confirmation, because the
	// self-fence protocol guarantees the node stopped them by then: it must
	// exceed the time a cut-off node takes to notice it lost quorum plus
	// StopWithin plus a margin for clock rate. It is only sound where a node
	// that stops running its agent also stops its workloads (a watchdog, or
	// workloads that die with the agent); zero never recovers without a
	// confirmed fence.
	SelfFenceWait time.Duration
	// StopWithin is the bound a partition that lost quorum is given to stop
	// every resource it runs (the Deadline of SelfFence actions).
	StopWithin time.Duration
	// FenceRetry is how long after every fence level failed fencing starts
	// again from level 0; zero never retries.
	FenceRetry time.Duration
	// FailureThreshold is the default number of failures on one node that
	// keep a group off that node.
	FailureThreshold int
	// Place picks a node for g among eligible (never empty, most preferred
	// first). Nil takes the first; the scheduler plugs the placer in here.
	Place func(g Group, eligible []string) string
}

// DefaultConfig returns the rules baton server uses: see the package doc for
// why these figures.
func DefaultConfig() Config {
	return Config{SelfFenceWait: 5 * time.Second, StopWithin: 2 * time.Second, FenceRetry: 10 * time.Second, FailureThreshold: 3}
}

// NodeState is a node's state as the engine sees it.
type NodeState string

// Node states.
const (
	NodeIsUp      NodeState = "up"
	NodeIsSuspect NodeState = "suspect" // keeps what it runs, gets nothing new
	NodeIsLeaving NodeState = "leaving"
	NodeIsDown    NodeState = "down"
)

// NodeInfo is what the engine knows of one node.
type NodeInfo struct {
	Name    string
	State   NodeState
	DownAt  time.Time // when it went down
	Unclean bool      // down and may still run resources: not fenced, deadline not passed
	Fencing int       // the fence level in progress, -1 if none
	Fenced  bool      // a fence confirmed it off since it went down
	// MustFence is set when the node was taken down by the engine although
	// it may be alive (a stop failed, or a user asked for a fence): it will
	// not self-fence, so only a confirmed fence makes it clean.
	MustFence bool
	RetryAt   time.Time // when fencing starts again after every level failed
}

// GroupInfo is a group's runtime view.
type GroupInfo struct {
	Spec      Group
	State     State
	Node      string          // where its resources are or may be ("" for nowhere)
	Resources []ResourceState // per resource, on Node
	Failures  map[string]int  // failures per node
	// LastFailure is when the last failure on each node was counted, for
	// Group.FailureTimeout.
	LastFailure map[string]time.Time
	UserNode    string // the node a user moved it to
	Reason      string // why it is in State
	// The rest is bookkeeping, exported so that a snapshot holds all of it.
	Restarts    []int  // restarts in place per resource on Node
	RestartFrom int    // ≥0: stop resources from here up, then start them again
	Avoid       string // the node it is failing over from
	Cause       string // why it is leaving its node, for the log until it runs again
	Deleting    bool
}

type group = GroupInfo

// Engine is the resource-group state machine of one partition. It is pure:
// Handle takes an event and returns actions. It is not safe for concurrent
// use.
type Engine struct {
	cfg     Config
	quorate bool
	nodes   map[string]*NodeInfo
	groups  map[string]*group
	now     time.Time
}

// Validate reports a configuration that would break the safety argument:
// a self-fence wait no longer than the time a cut-off node is given to stop.
func (c Config) Validate() error {
	if c.SelfFenceWait > 0 && c.SelfFenceWait <= c.StopWithin {
		return fmt.Errorf("%w: self-fence wait %s must exceed the stop bound %s plus the time a cut-off node takes to notice (set it to 0 to rely on fencing alone)",
			ErrBadConfig, c.SelfFenceWait, c.StopWithin)
	}
	if c.SelfFenceWait < 0 || c.StopWithin < 0 || c.FenceRetry < 0 || c.FailureThreshold < 0 {
		return fmt.Errorf("%w: durations and the failure threshold must not be negative", ErrBadConfig)
	}
	return nil
}

// New returns an engine with no nodes or groups and no quorum. Zero
// StopWithin and FailureThreshold take DefaultConfig's; a zero SelfFenceWait
// or FenceRetry stays off. Check cfg with Validate first.
func New(cfg Config) *Engine {
	def := DefaultConfig()
	if cfg.FailureThreshold <= 0 {
		cfg.FailureThreshold = def.FailureThreshold
	}
	if cfg.StopWithin <= 0 {
		cfg.StopWithin = def.StopWithin
	}
	return &Engine{cfg: cfg, nodes: map[string]*NodeInfo{}, groups: map[string]*group{}}
}

// Snapshot is the whole state of an engine as plain data (it marshals to
// JSON), for a leader to persist and its successor to Restore.
type Snapshot struct {
	Quorate bool
	Now     time.Time
	Nodes   []NodeInfo
	Groups  []GroupInfo
}

// Snapshot returns a deep copy of the engine's state.
func (e *Engine) Snapshot() Snapshot {
	return Snapshot{Quorate: e.quorate, Now: e.now, Nodes: e.Nodes(), Groups: e.Groups()}
}

// Restore returns an engine with cfg in the state s. A new leader restores
// the last snapshot its predecessor persisted, then feeds the events it has
// seen since (node states, reports).
func Restore(cfg Config, s Snapshot) *Engine {
	e := New(cfg)
	e.quorate, e.now = s.Quorate, s.Now
	for _, n := range s.Nodes {
		e.nodes[n.Name] = &n
	}
	for _, g := range s.Groups {
		gi := e.info(&g)
		e.groups[g.Spec.Name] = &gi
	}
	return e
}

// Quorate says whether the engine believes its partition has quorum.
func (e *Engine) Quorate() bool { return e.quorate }

// Nodes returns every known node sorted by name.
func (e *Engine) Nodes() []NodeInfo {
	out := make([]NodeInfo, 0, len(e.nodes))
	for _, n := range sortedKeys(e.nodes) {
		out = append(out, *e.nodes[n])
	}
	return out
}

// Groups returns every group sorted by name.
func (e *Engine) Groups() []GroupInfo {
	out := make([]GroupInfo, 0, len(e.groups))
	for _, n := range sortedKeys(e.groups) {
		out = append(out, e.info(e.groups[n]))
	}
	return out
}

// Group returns the group called name.
func (e *Engine) Group(name string) (GroupInfo, bool) {
	g, ok := e.groups[name]
	if !ok {
		return GroupInfo{}, false
	}
	return e.info(g), true
}

func (e *Engine) info(g *group) GroupInfo {
	gi := *g
	gi.Spec.Resources = slices.Clone(gi.Spec.Resources)
	gi.Spec.Nodes = slices.Clone(gi.Spec.Nodes)
	gi.Resources = slices.Clone(gi.Resources)
	gi.Restarts = slices.Clone(gi.Restarts)
	gi.Failures = maps.Clone(g.Failures)
	gi.LastFailure = maps.Clone(g.LastFailure)
	if gi.Failures == nil {
		gi.Failures = map[string]int{}
	}
	if gi.LastFailure == nil {
		gi.LastFailure = map[string]time.Time{}
	}
	return gi
}

// NextDeadline returns the earliest time at which a Tick would change
// something (a self-fence deadline, a fence retry, failures expiring), so the adapter can set
// one timer instead of ticking often.
func (e *Engine) NextDeadline() (time.Time, bool) {
	var best time.Time
	for _, n := range e.nodes {
		if n.State != NodeIsDown || !n.Unclean {
			continue
		}
		for _, t := range []time.Time{e.deadline(n), n.RetryAt} {
			if !t.IsZero() && (best.IsZero() || t.Before(best)) {
				best = t
			}
		}
	}
	for _, g := range e.groups {
		if g.Spec.FailureTimeout <= 0 {
			continue
		}
		for _, last := range g.LastFailure {
			if t := last.Add(g.Spec.FailureTimeout); best.IsZero() || t.Before(best) {
				best = t
			}
		}
	}
	return best, !best.IsZero()
}

func (e *Engine) deadline(n *NodeInfo) time.Time {
	if e.cfg.SelfFenceWait <= 0 || n.MustFence {
		return time.Time{}
	}
	return n.DownAt.Add(e.cfg.SelfFenceWait)
}

// Handle applies one event and returns the actions it calls for, in order.
func (e *Engine) Handle(ev Event) []Action {
	if ev.At.After(e.now) {
		e.now = ev.At
	}
	// Every event carries the time: deadlines and retries due by now apply
	// first, whatever the event.
	out := e.tick(e.now, nil)
	switch ev.Kind {
	case NodeUp:
		out = e.nodeUp(ev, out)
	case NodeSuspect:
		if n := e.node(ev.Node); n.State == NodeIsUp {
			n.State = NodeIsSuspect
		}
	case NodeLeaving:
		n := e.node(ev.Node)
		if n.State == NodeIsUp || n.State == NodeIsSuspect {
			n.State = NodeIsLeaving
			for _, g := range e.onNode(n.Name) {
				g.Cause = n.Name + " is leaving in order"
			}
		}
	case NodeDown:
		out = e.nodeDown(ev.Node, "node down"+detail(ev), out)
	case FenceNode:
		e.node(ev.Node).MustFence = true
		out = e.nodeDown(ev.Node, "fence requested by user"+detail(ev), out)
		if n := e.nodes[ev.Node]; !n.Fenced {
			n.Unclean = true
			if e.quorate && n.Fencing < 0 {
				out = e.startFence(n, 0, "fence requested by user", out)
			}
		}
	case Fenced:
		n := e.node(ev.Node)
		n.State, n.Unclean, n.Fenced, n.Fencing = NodeIsDown, false, true, -1
		if n.DownAt.IsZero() {
			n.DownAt = ev.At
		}
		for _, g := range e.onNode(n.Name) {
			for i := range g.Resources {
				g.Resources[i] = ResStopped
			}
			g.Reason = fmt.Sprintf("%s fenced at level %d", n.Name, ev.Level)
			g.Cause = g.Reason
		}
	case FenceFailed:
		n, ok := e.nodes[ev.Node]
		if !ok || n.Fencing != ev.Level || !n.Unclean {
			break // stale
		}
		out = e.startFence(n, ev.Level+1, fmt.Sprintf("fence level %d failed%s", ev.Level, detail(ev)), out)
	case QuorumGained:
		e.quorate = true
		for _, name := range sortedKeys(e.nodes) {
			if n := e.nodes[name]; n.State == NodeIsDown && n.Unclean && n.Fencing < 0 {
				out = e.startFence(n, 0, "quorum regained; "+name+" is down and unclean", out)
			}
		}
	case QuorumLost:
		e.quorate = false
		for _, name := range sortedKeys(e.nodes) {
			n := e.nodes[name]
			n.Fencing = -1 // a partition without quorum does not fence
			if n.State == NodeIsDown && n.Unclean {
				e.waitForQuorum(n, "quorum lost while "+name+" was down")
				for _, g := range e.onNode(name) {
					out = append(out, Action{Kind: SetState, Group: g.Spec.Name, State: g.State, Node: g.Node, Reason: g.Reason})
				}
			}
			if n.State != NodeIsDown && len(e.onNode(name)) > 0 {
				out = append(out, Action{Kind: SelfFence, Node: name, Deadline: ev.At.Add(e.cfg.StopWithin),
					Reason: fmt.Sprintf("partition lost quorum: stop every resource within %s", e.cfg.StopWithin)})
			}
		}
	case ResourceStarted, ResourceStopped, ResourceFailed, MonitorFailed:
		out = e.resourceEvent(ev, out)
	case CreateGroup:
		out = e.create(ev, out)
	case DeleteGroup:
		if g, ok := e.groups[ev.Group]; ok {
			g.Deleting = true
			g.Reason = "deleted by user"
		}
	case MoveGroup:
		out = e.move(ev, out)
	case ResetFailures:
		if g, ok := e.groups[ev.Group]; ok {
			if ev.Node == "" {
				clear(g.Failures)
				clear(g.LastFailure)
			} else {
				delete(g.Failures, ev.Node)
				delete(g.LastFailure, ev.Node)
			}
		}
	case Tick: // applied above
	}
	for _, name := range sortedKeys(e.groups) {
		out = e.reconcile(e.groups[name], out)
	}
	return out
}

func detail(ev Event) string {
	if ev.Reason == "" {
		return ""
	}
	return ": " + ev.Reason
}

func (e *Engine) node(name string) *NodeInfo {
	n, ok := e.nodes[name]
	if !ok {
		n = &NodeInfo{Name: name, State: NodeIsDown, Fencing: -1}
		e.nodes[name] = n
	}
	return n
}

func (e *Engine) onNode(node string) []*group {
	var out []*group
	for _, name := range sortedKeys(e.groups) {
		if g := e.groups[name]; g.Node == node && !g.allStopped(0) {
			out = append(out, g)
		}
	}
	return out
}

func (e *Engine) nodeUp(ev Event, out []Action) []Action {
	n := e.node(ev.Node)
	if n.State == NodeIsUp {
		return out
	}
	if n.State == NodeIsDown && n.MustFence && !n.Fenced {
		// Taken down alive (a stop failed, or a user's fence): it stays out
		// until a fence, or a user, confirms it was off.
		return out
	}
	if n.State == NodeIsDown && n.Unclean {
		// Back before the fence: its resources are in an unknown state, so
		// stop them all, then start them again in order.
		for _, g := range e.onNode(n.Name) {
			for i, r := range g.Resources {
				if r == ResUnknown {
					g.Resources[i] = ResFailed
				}
			}
			g.RestartFrom = 0
			g.Reason = n.Name + " came back before it was fenced: stop and start again"
			g.Cause = g.Reason
		}
	}
	n.State, n.Unclean, n.Fenced, n.Fencing, n.DownAt, n.RetryAt, n.MustFence = NodeIsUp, false, false, -1, time.Time{}, time.Time{}, false
	return out
}

func (e *Engine) nodeDown(name, reason string, out []Action) []Action {
	n := e.node(name)
	if n.State == NodeIsDown {
		return out
	}
	n.State, n.DownAt, n.Fenced, n.RetryAt = NodeIsDown, e.now, false, time.Time{}
	for _, g := range e.onNode(name) {
		n.Unclean = true
		for i, r := range g.Resources {
			if r != ResStopped {
				g.Resources[i] = ResUnknown
			}
		}
		g.Reason = reason
		if g.UserNode == name {
			g.UserNode = ""
		}
	}
	if n.Unclean && e.quorate {
		out = e.startFence(n, 0, reason, out)
	} else if n.Unclean {
		e.waitForQuorum(n, reason)
	}
	return out
}

// waitForQuorum says in the reason of the groups of down, unclean node n
// that fencing it, and so their recovery, waits for quorum: a partition
// without quorum fences nobody.
func (e *Engine) waitForQuorum(n *NodeInfo, reason string) {
	for _, g := range e.onNode(n.Name) {
		g.Reason = reason + "; this partition has no quorum: " + n.Name + " is fenced, and the group recovered, once it is quorate again"
	}
}

func (e *Engine) levels(node string) []string {
	if l, ok := e.cfg.FenceLevels[node]; ok {
		return l
	}
	return e.cfg.DefaultFenceLevels
}

func (e *Engine) startFence(n *NodeInfo, level int, reason string, out []Action) []Action {
	levels := e.levels(n.Name)
	if level < len(levels) {
		n.Fencing = level
		return append(out, Action{Kind: Fence, Node: n.Name, Level: level, Device: levels[level], Reason: reason})
	}
	n.Fencing = -1
	if e.cfg.FenceRetry > 0 && len(levels) > 0 {
		n.RetryAt = e.now.Add(e.cfg.FenceRetry)
	}
	why := fmt.Sprintf("every fence level of %s failed", n.Name)
	if len(levels) == 0 {
		why = n.Name + " has no fence device"
	}
	wait := "waiting for a manual fence"
	if d := e.deadline(n); !d.IsZero() {
		wait = "waiting for its self-fence deadline at " + d.Format("15:04:05.000")
	}
	for _, g := range e.onNode(n.Name) {
		g.Reason = why + "; " + wait
		out = append(out, Action{Kind: SetState, Group: g.Spec.Name, State: Recovering, Node: g.Node, Reason: g.Reason})
	}
	return out
}

func (e *Engine) tick(now time.Time, out []Action) []Action {
	for _, name := range sortedKeys(e.groups) {
		g := e.groups[name]
		if g.Spec.FailureTimeout <= 0 {
			continue
		}
		for _, node := range sortedKeys(g.Failures) {
			if now.Sub(g.LastFailure[node]) >= g.Spec.FailureTimeout {
				delete(g.Failures, node)
				delete(g.LastFailure, node)
				if node == g.Node {
					clear(g.Restarts)
				}
			}
		}
	}
	for _, name := range sortedKeys(e.nodes) {
		n := e.nodes[name]
		if n.State != NodeIsDown || !n.Unclean {
			continue
		}
		if d := e.deadline(n); !d.IsZero() && !now.Before(d) {
			n.Unclean, n.Fencing = false, -1
			for _, g := range e.onNode(name) {
				for i := range g.Resources {
					g.Resources[i] = ResStopped
				}
				g.Reason = fmt.Sprintf("self-fence deadline of %s passed (down at %s + %s)", name, n.DownAt.Format("15:04:05.000"), e.cfg.SelfFenceWait)
				g.Cause = g.Reason
			}
			continue
		}
		if e.quorate && n.Fencing < 0 && !n.RetryAt.IsZero() && !now.Before(n.RetryAt) {
			n.RetryAt = time.Time{}
			out = e.startFence(n, 0, "retrying fence of "+name, out)
		}
	}
	return out
}

func (e *Engine) create(ev Event, out []Action) []Action {
	if ev.Spec == nil {
		return out
	}
	spec := *ev.Spec
	if err := Validate(spec); err != nil {
		return append(out, Action{Kind: SetState, Group: spec.Name, State: Stopped, Reason: "not created: " + err.Error()})
	}
	if _, ok := e.groups[spec.Name]; ok {
		return append(out, Action{Kind: SetState, Group: spec.Name, State: e.groups[spec.Name].State, Reason: "not created: a group with this name exists"})
	}
	g := &group{RestartFrom: -1}
	g.Spec = spec
	g.Resources = make([]ResourceState, len(spec.Resources))
	for i := range g.Resources {
		g.Resources[i] = ResStopped
	}
	g.Restarts = make([]int, len(spec.Resources))
	g.Failures = map[string]int{}
	g.LastFailure = map[string]time.Time{}
	g.Reason = "created"
	e.groups[spec.Name] = g
	return out
}

func (e *Engine) move(ev Event, out []Action) []Action {
	g, ok := e.groups[ev.Group]
	if !ok {
		return out
	}
	why := ""
	switch {
	case !e.quorate:
		why = "no quorum"
	case ev.Node != "" && !slices.Contains(e.eligible(g), ev.Node):
		why = e.whyNot(g, ev.Node)
	}
	if why != "" {
		return append(out, Action{Kind: SetState, Group: g.Spec.Name, State: g.State, Node: g.Node,
			Reason: fmt.Sprintf("move to %s refused: %s", ev.Node, why)})
	}
	g.UserNode, g.Avoid = ev.Node, ""
	g.Reason = "moved by user"
	if ev.Node == "" {
		g.Reason = "user's node choice cleared"
	}
	return out
}

func (e *Engine) resourceEvent(ev Event, out []Action) []Action {
	g, ok := e.groups[ev.Group]
	if !ok || g.Node != ev.Node || ev.Node == "" {
		return out // stale: the group is not (or no longer) there
	}
	i := slices.IndexFunc(g.Spec.Resources, func(r Resource) bool { return r.Name == ev.Resource })
	if i < 0 {
		return out
	}
	r := g.Resources[i]
	switch ev.Kind {
	case ResourceStarted:
		if r == ResStarting {
			g.Resources[i] = ResStarted
		}
	case ResourceStopped:
		switch r {
		case ResStopping, ResFailed:
			g.Resources[i] = ResStopped
		case ResStarted, ResStarting:
			g.Resources[i] = ResStopped
			out = e.failure(g, i, "stopped by itself"+detail(ev), out)
		}
	case ResourceFailed, MonitorFailed:
		switch r {
		case ResStopping:
			// A resource that will not stop may still run: only a fence
			// makes the node safe.
			g.Resources[i] = ResUnknown
			e.nodes[ev.Node].MustFence = true
			out = e.nodeDown(ev.Node, fmt.Sprintf("stop of %s/%s failed%s", g.Spec.Name, ev.Resource, detail(ev)), out)
		case ResStarting, ResStarted:
			g.Resources[i] = ResFailed
			what := "failed"
			if ev.Kind == MonitorFailed {
				what = "monitor failed"
			}
			out = e.failure(g, i, what+detail(ev), out)
		}
	}
	return out
}

// failure counts a failure of resource i on the group's node and decides
// between a restart in place and a failover.
func (e *Engine) failure(g *group, i int, what string, out []Action) []Action {
	node, res := g.Node, g.Spec.Resources[i]
	g.Failures[node]++
	g.LastFailure[node] = e.now
	threshold := e.threshold(g)
	switch {
	case g.Failures[node] >= threshold:
		g.Avoid = node
		g.Reason = fmt.Sprintf("%s %s on %s; %d failures there reach the threshold %d: failing over", res.Name, what, node, g.Failures[node], threshold)
	case g.Restarts[i] < res.Monitor.Restarts:
		g.Restarts[i]++
		g.Reason = fmt.Sprintf("%s %s on %s: restart %d of %d in place", res.Name, what, node, g.Restarts[i], res.Monitor.Restarts)
	default:
		g.Avoid = node
		g.Reason = fmt.Sprintf("%s %s on %s after %d restarts in place: failing over", res.Name, what, node, g.Restarts[i])
	}
	if g.UserNode == node && g.Avoid == node {
		g.UserNode = ""
	}
	if g.Avoid == node {
		g.Cause = g.Reason
	}
	// Whether it stays (a restart in place, or no other node) or goes,
	// resources from i up are stopped before anything starts again.
	g.RestartFrom = i
	return out
}

func (e *Engine) threshold(g *group) int {
	if g.Spec.FailureThreshold > 0 {
		return g.Spec.FailureThreshold
	}
	return e.cfg.FailureThreshold
}

// prefs is the group's preference order: the user's node, then its allowed
// nodes; with no allowed nodes every known node in name order.
func (e *Engine) prefs(g *group) []string {
	var p []string
	if g.UserNode != "" {
		p = append(p, g.UserNode)
	}
	nodes := g.Spec.Nodes
	if len(nodes) == 0 {
		nodes = sortedKeys(e.nodes)
	}
	for _, n := range nodes {
		if !slices.Contains(p, n) {
			p = append(p, n)
		}
	}
	return p
}

func (e *Engine) eligible(g *group) []string {
	var out []string
	for _, n := range e.prefs(g) {
		if e.whyNot(g, n) == "" {
			out = append(out, n)
		}
	}
	return out
}

// whyNot says why g may not be placed on node, or "" if it may.
func (e *Engine) whyNot(g *group, node string) string {
	return e.whyNotOn(g, node, false)
}

// whyNotOn says why g may not run on node; a group already there (staying)
// may stay on a suspect node.
func (e *Engine) whyNotOn(g *group, node string, staying bool) string {
	n, ok := e.nodes[node]
	switch {
	case staying && ok && n.State == NodeIsSuspect && g.Failures[node] < e.threshold(g) &&
		(len(g.Spec.Nodes) == 0 || slices.Contains(g.Spec.Nodes, node)):
		return ""
	case len(g.Spec.Nodes) > 0 && !slices.Contains(g.Spec.Nodes, node):
		return node + " is not among the group's nodes"
	case !ok:
		return node + " is unknown"
	case n.State != NodeIsUp:
		return fmt.Sprintf("%s is %s", node, n.State)
	case g.Failures[node] >= e.threshold(g):
		return fmt.Sprintf("%s has %d failures (threshold %d)", node, g.Failures[node], e.threshold(g))
	}
	return ""
}

// want returns the node the group should run on now, or "" for none, with
// the reason.
func (e *Engine) want(g *group) (string, string) {
	if g.Deleting {
		return "", "deleted by user"
	}
	if !e.quorate {
		return "", "no quorum"
	}
	el := e.eligible(g)
	if g.UserNode != "" && slices.Contains(el, g.UserNode) {
		return g.UserNode, "moved by user to " + g.UserNode
	}
	if cur := g.Node; cur != "" && cur != g.Avoid && e.whyNotOn(g, cur, true) == "" {
		if g.Spec.Failback == FailbackAuto && len(el) > 0 && el[0] != cur && len(g.Spec.Nodes) > 0 && el[0] != g.Avoid &&
			slices.Index(g.Spec.Nodes, el[0]) < slices.Index(g.Spec.Nodes, cur) {
			best := el[0]
			return best, "failback to the preferred node " + best
		}
		return cur, ""
	}
	cands := slices.DeleteFunc(slices.Clone(el), func(n string) bool { return n == g.Avoid })
	if len(cands) == 0 && g.Avoid != "" && slices.Contains(el, g.Avoid) {
		cands = []string{g.Avoid}
	}
	if len(cands) == 0 {
		var why []string
		for _, n := range e.prefs(g) {
			if w := e.whyNot(g, n); w != "" {
				why = append(why, w)
			}
		}
		if len(why) == 0 {
			why = []string{"no node is known"}
		}
		return "", "no eligible node: " + strings.Join(why, ", ")
	}
	pick := cands[0]
	if e.cfg.Place != nil {
		if p := e.cfg.Place(g.Spec, cands); slices.Contains(cands, p) {
			pick = p
		}
	}
	return pick, fmt.Sprintf("placed on %s (eligible: %s)", pick, strings.Join(cands, ","))
}

func (g *group) allStopped(from int) bool {
	for _, r := range g.Resources[from:] {
		if r != ResStopped {
			return false
		}
	}
	return true
}

func (e *Engine) setState(g *group, s State, reason string, out []Action) []Action {
	if g.State == s && g.Reason == reason {
		return out
	}
	changed := g.State != s
	g.State, g.Reason = s, reason
	if !changed {
		return out
	}
	return append(out, Action{Kind: SetState, Group: g.Spec.Name, State: s, Node: g.Node, Reason: reason})
}

// reconcile moves g one step toward where it should run: it waits for a
// down node to be made safe, stops resources in reverse, then starts them in
// order, one at a time, each after the previous one is reported.
func (e *Engine) reconcile(g *group, out []Action) []Action {
	if g.Node != "" {
		n := e.nodes[g.Node]
		if n.State == NodeIsDown {
			if n.Unclean && !g.allStopped(0) {
				return e.setState(g, Recovering, g.Reason, out)
			}
			for i := range g.Resources {
				g.Resources[i] = ResStopped
			}
			if g.Avoid == "" {
				g.Avoid = g.Node
			}
		}
	}
	if g.RestartFrom < 0 {
		g.RestartFrom = slices.Index(g.Resources, ResFailed)
	}
	want, why := e.want(g)
	if g.Node != "" {
		from := -1
		switch {
		case want != g.Node:
			from = 0
		case g.RestartFrom >= 0:
			from = g.RestartFrom
		}
		if from >= 0 {
			for i := len(g.Resources) - 1; i >= from; i-- {
				switch g.Resources[i] {
				case ResStopped:
					continue
				case ResStopping, ResStarting, ResUnknown:
					return out // wait for the report
				case ResStarted, ResFailed:
					g.Resources[i] = ResStopping
					r := g.Spec.Resources[i]
					reason := g.Reason
					switch {
					case g.Cause != "":
						reason = g.Cause
					case want != g.Node && why != "":
						reason = why
					}
					out = e.setState(g, Stopping, reason, out)
					return append(out, Action{Kind: StopResource, Group: g.Spec.Name, Resource: r.Name, Spec: &r, Node: g.Node, Reason: reason})
				}
			}
			g.RestartFrom = -1
			if want != g.Node {
				g.Node = ""
				clear(g.Restarts)
			}
		}
	}
	if g.Node == "" {
		if want == "" {
			if g.Deleting {
				delete(e.groups, g.Spec.Name)
				return append(out, Action{Kind: SetState, Group: g.Spec.Name, State: Deleted, Reason: why})
			}
			s := Stopped
			if !e.quorate {
				s = Blocked
			}
			return e.setState(g, s, why, out)
		}
		g.Node = want
		clear(g.Restarts)
		if why != "" {
			g.Reason = why
		}
		if g.Cause != "" {
			g.Reason += "; " + g.Cause
		}
	}
	for i, r := range g.Resources {
		switch r {
		case ResStarted:
			continue
		case ResStopped:
			g.Resources[i] = ResStarting
			res := g.Spec.Resources[i]
			reason := g.Reason
			if i > 0 {
				reason = fmt.Sprintf("%s started", g.Spec.Resources[i-1].Name)
			}
			out = e.setState(g, Starting, g.Reason, out)
			return append(out, Action{Kind: StartResource, Group: g.Spec.Name, Resource: res.Name, Spec: &res, Node: g.Node, Reason: reason})
		default:
			return out // starting: wait for the report
		}
	}
	g.Avoid, g.Cause = "", ""
	return e.setState(g, Running, "every resource started", out)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

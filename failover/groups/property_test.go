package groups

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// world is the truth the engine cannot see: which resources may really be
// running where. A start the engine asked for may be running from the
// moment it is asked until a stop is reported, the node is fenced, or — for
// a node that was cut off — its self-fence deadline passes (the protocol's
// promise, only assumed when SelfFenceWait is set).
type world struct {
	t       *testing.T
	r       *rand.Rand
	e       *Engine
	cfg     Config
	now     time.Time
	quorate bool
	up      map[string]bool                       // per the events sent
	downAt  map[string]time.Time                  // when a node was sent down (cut off)
	maybe   map[string]map[string]map[string]bool // group → node → resources possibly running
	pending []Action                              // starts, stops and fences not yet answered
	log     []string
}

var (
	propNodes  = []string{"n1", "n2", "n3", "n4"}
	propGroups = []Group{
		{Name: "g1", Nodes: []string{"n1", "n2", "n3"}, Failback: FailbackAuto, Resources: []Resource{
			{Name: "ip", Kind: IP}, {Name: "db", Monitor: Monitor{Restarts: 1}}, {Name: "app", Monitor: Monitor{Restarts: 2}}}},
		{Name: "g2", FailureThreshold: 2, FailureTimeout: 4 * time.Second, Resources: []Resource{{Name: "x", Monitor: Monitor{Restarts: 1}}}},
		{Name: "g3", Nodes: []string{"n4", "n3"}, Resources: []Resource{{Name: "a"}, {Name: "b"}}},
	}
)

func (w *world) mark(g, n, r string, on bool) {
	if w.maybe[g] == nil {
		w.maybe[g] = map[string]map[string]bool{}
	}
	if w.maybe[g][n] == nil {
		w.maybe[g][n] = map[string]bool{}
	}
	if on {
		w.maybe[g][n][r] = true
	} else {
		delete(w.maybe[g][n], r)
	}
}

func (w *world) send(ev Event) {
	ev.At = w.now
	w.log = append(w.log, fmt.Sprintf("%s %s", ev.At.Sub(epoch), ev))
	for _, a := range w.e.Handle(ev) {
		w.log = append(w.log, "  "+a.String())
		switch a.Kind {
		case StartResource:
			if !w.quorate {
				w.fail("started %s/%s on %s without quorum", a.Group, a.Resource, a.Node)
			}
			if !w.up[a.Node] {
				w.fail("started %s/%s on %s, which is down", a.Group, a.Resource, a.Node)
			}
			for n, rs := range w.maybe[a.Group] {
				if n != a.Node && len(rs) > 0 {
					w.fail("started %s/%s on %s while %v may still run on %s", a.Group, a.Resource, a.Node, rs, n)
				}
			}
			w.mark(a.Group, a.Node, a.Resource, true)
			w.pending = append(w.pending, a)
		case StopResource, Fence:
			w.pending = append(w.pending, a)
		}
	}
}

func (w *world) fail(format string, args ...any) {
	w.t.Helper()
	tail := w.log
	if len(tail) > 60 {
		tail = tail[len(tail)-60:]
	}
	w.t.Fatalf(format+"\nlast events:\n%s", append(args, joinLines(tail))...)
}

func joinLines(l []string) string {
	s := ""
	for _, x := range l {
		s += x + "\n"
	}
	return s
}

// settle heals the cluster — quorum back, every node up, failures reset,
// every action answered with success — and checks that every group then
// runs: the engine never gets stuck waiting for something that will not
// come.
func (w *world) settle() {
	w.log = append(w.log, "(settling)")
	if !w.quorate {
		w.quorate = true
		w.send(Event{Kind: QuorumGained})
	}
	for _, g := range propGroups {
		w.send(Event{Kind: ResetFailures, Group: g.Name})
		w.send(Event{Kind: MoveGroup, Group: g.Name}) // clear the user's choice
	}
	for range 200 {
		if len(w.pending) > 0 {
			a := w.pending[0]
			w.pending = w.pending[1:]
			switch a.Kind {
			case StartResource:
				w.send(Event{Kind: ResourceStarted, Group: a.Group, Resource: a.Resource, Node: a.Node})
			case StopResource:
				w.mark(a.Group, a.Node, a.Resource, false)
				w.send(Event{Kind: ResourceStopped, Group: a.Group, Resource: a.Resource, Node: a.Node})
			case Fence:
				for g := range w.maybe {
					delete(w.maybe[g], a.Node)
				}
				w.pending = slices.DeleteFunc(w.pending, func(p Action) bool { return p.Node == a.Node && p.Kind != Fence })
				w.up[a.Node] = false
				w.downAt[a.Node] = time.Time{}
				w.send(Event{Kind: Fenced, Node: a.Node, Level: a.Level})
			}
			continue
		}
		for _, n := range propNodes {
			if !w.up[n] {
				w.up[n] = true
				w.downAt[n] = time.Time{}
			}
			w.send(Event{Kind: NodeUp, Node: n})
		}
		w.now = w.now.Add(10 * time.Second)
		w.send(Event{Kind: Tick})
		if len(w.pending) == 0 {
			break
		}
	}
	for _, g := range w.e.Groups() {
		if g.State != Running {
			w.fail("after healing, group %s is %s on %q (%s) %v", g.Spec.Name, g.State, g.Node, g.Reason, g.Resources)
		}
	}
}

// roundTrip replaces the engine by one restored from its snapshot passed
// through JSON, as a new leader would; it must behave the same.
func (w *world) roundTrip() {
	raw, err := json.Marshal(w.e.Snapshot())
	if err != nil {
		w.t.Fatalf("marshal snapshot: %v", err)
	}
	var s Snapshot
	if err := json.Unmarshal(raw, &s); err != nil {
		w.t.Fatalf("unmarshal snapshot: %v", err)
	}
	e := Restore(w.cfg, s)
	if a, b := fmt.Sprint(w.e.Snapshot()), fmt.Sprint(e.Snapshot()); a != b {
		w.t.Fatalf("snapshot does not survive a round trip:\n%s\n%s", a, b)
	}
	w.e = e
	w.log = append(w.log, "(restored from a snapshot)")
}

// take removes and returns a random pending action matching keep.
func (w *world) take(keep func(Action) bool) (Action, bool) {
	var idx []int
	for i, a := range w.pending {
		if keep(a) {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return Action{}, false
	}
	i := idx[w.r.IntN(len(idx))]
	a := w.pending[i]
	w.pending = slices.Delete(w.pending, i, i+1)
	return a, true
}

func (w *world) step() {
	r := w.r
	node := propNodes[r.IntN(len(propNodes))]
	switch k := r.IntN(100); {
	case k < 35: // a start or stop is answered (from a reachable node, mostly)
		a, ok := w.take(func(a Action) bool { return a.Kind != Fence && (w.up[a.Node] || r.IntN(4) == 0) })
		if !ok {
			return
		}
		ev := Event{Group: a.Group, Resource: a.Resource, Node: a.Node}
		switch {
		case a.Kind == StartResource && r.IntN(6) > 0:
			ev.Kind = ResourceStarted
		case a.Kind == StartResource:
			ev.Kind = ResourceFailed // a failed start leaves nothing running
			w.mark(a.Group, a.Node, a.Resource, false)
		case r.IntN(8) > 0:
			ev.Kind = ResourceStopped
			w.mark(a.Group, a.Node, a.Resource, false)
		default:
			ev.Kind = ResourceFailed // the stop failed: it still runs
		}
		w.send(ev)
	case k < 45: // a fence is answered
		a, ok := w.take(func(a Action) bool { return a.Kind == Fence })
		if !ok {
			return
		}
		if r.IntN(3) == 0 {
			w.send(Event{Kind: FenceFailed, Node: a.Node, Level: a.Level})
			return
		}
		for g := range w.maybe {
			delete(w.maybe[g], a.Node)
		}
		w.pending = slices.DeleteFunc(w.pending, func(p Action) bool { return p.Node == a.Node && p.Kind != Fence })
		w.up[a.Node] = false
		w.downAt[a.Node] = time.Time{}
		w.send(Event{Kind: Fenced, Node: a.Node, Level: a.Level})
	case k < 55:
		w.now = w.now.Add(time.Duration(r.IntN(2500)) * time.Millisecond)
		if w.cfg.SelfFenceWait > 0 {
			for n, t := range w.downAt {
				if !t.IsZero() && !w.now.Before(t.Add(w.cfg.SelfFenceWait)) {
					for g := range w.maybe {
						delete(w.maybe[g], n) // it self-fenced, as the protocol promises
					}
					w.pending = slices.DeleteFunc(w.pending, func(p Action) bool { return p.Node == n && p.Kind != Fence })
				}
			}
		}
		w.send(Event{Kind: Tick})
	case k < 62:
		if w.up[node] {
			w.up[node] = false
			w.downAt[node] = w.now
			w.send(Event{Kind: NodeDown, Node: node})
		}
	case k < 70:
		if !w.up[node] {
			w.up[node] = true
			w.downAt[node] = time.Time{}
		}
		w.send(Event{Kind: NodeUp, Node: node}) // also ends a suspicion
	case k < 71:
		if w.up[node] {
			w.send(Event{Kind: NodeSuspect, Node: node})
		}
	case k < 73:
		if w.up[node] {
			w.send(Event{Kind: NodeLeaving, Node: node})
		}
	case k < 77:
		w.quorate = !w.quorate
		if w.quorate {
			w.send(Event{Kind: QuorumGained})
		} else {
			w.send(Event{Kind: QuorumLost})
		}
	case k < 83: // a monitor fails somewhere something may run
		g := propGroups[r.IntN(len(propGroups))]
		res := g.Resources[r.IntN(len(g.Resources))]
		w.send(Event{Kind: MonitorFailed, Group: g.Name, Resource: res.Name, Node: node})
	case k < 86:
		w.send(Event{Kind: MoveGroup, Group: propGroups[r.IntN(len(propGroups))].Name, Node: node})
	case k < 88:
		w.send(Event{Kind: ResetFailures, Group: propGroups[r.IntN(len(propGroups))].Name})
	case k < 92:
		g := propGroups[r.IntN(len(propGroups))]
		w.send(Event{Kind: CreateGroup, Group: g.Name, Spec: &g})
	case k < 94:
		w.send(Event{Kind: DeleteGroup, Group: propGroups[r.IntN(len(propGroups))].Name})
	case k < 95:
		w.send(Event{Kind: FenceNode, Node: node})
	default: // a stale or bogus report
		g := propGroups[r.IntN(len(propGroups))]
		res := g.Resources[r.IntN(len(g.Resources))]
		kinds := []EventKind{ResourceStarted, ResourceFailed, FenceFailed}
		w.send(Event{Kind: kinds[r.IntN(len(kinds))], Group: g.Name, Resource: res.Name, Node: node, Level: r.IntN(2)})
	}
}

// TestNeverTwice drives the engine with random event sequences against a
// model of what may really run where, and checks at every start that the
// group may run nowhere else, that the partition is quorate and that the
// node is up. A group on a node that went down may run there until the node
// is fenced or its self-fence deadline has passed, so this also checks that
// nothing is restarted away from a down node before either.
func TestNeverTwice(t *testing.T) {
	for _, wait := range []time.Duration{0, 3 * time.Second} {
		for seed := range uint64(300) {
			t.Run(fmt.Sprintf("wait=%s/seed=%d", wait, seed), func(t *testing.T) {
				runWorld(t, seed, uint64(wait), wait)
			})
		}
	}
}

// TestMakesProgress checks liveness on a calm cluster: with every action
// answered successfully, every group ends up running.
func TestMakesProgress(t *testing.T) {
	e := New(Config{DefaultFenceLevels: []string{"ipmi"}})
	var pending []Action
	do := func(ev Event) {
		ev.At = epoch
		pending = append(pending, e.Handle(ev)...)
	}
	do(Event{Kind: QuorumGained})
	for _, n := range propNodes {
		do(Event{Kind: NodeUp, Node: n})
	}
	for i := range propGroups {
		do(Event{Kind: CreateGroup, Spec: &propGroups[i]})
	}
	do(Event{Kind: NodeDown, Node: "n1"})
	for i := 0; len(pending) > 0 && i < 1000; i++ {
		a := pending[0]
		pending = pending[1:]
		switch a.Kind {
		case StartResource:
			do(Event{Kind: ResourceStarted, Group: a.Group, Resource: a.Resource, Node: a.Node})
		case StopResource:
			do(Event{Kind: ResourceStopped, Group: a.Group, Resource: a.Resource, Node: a.Node})
		case Fence:
			do(Event{Kind: Fenced, Node: a.Node, Level: a.Level})
		}
	}
	for _, g := range e.Groups() {
		if g.State != Running || g.Node == "n1" {
			t.Errorf("group %s is %s on %q (%s), want running off n1", g.Spec.Name, g.State, g.Node, g.Reason)
		}
	}
}

// runWorld starts a healthy cluster with every test group, runs 400 random
// steps (restoring the engine from a snapshot now and then), then heals it.
func runWorld(t *testing.T, seed1, seed2 uint64, wait time.Duration) {
	cfg := Config{SelfFenceWait: wait, StopWithin: time.Second, FenceRetry: 2 * time.Second, FailureThreshold: 3,
		DefaultFenceLevels: []string{"ipmi", "pdu"}}
	w := &world{t: t, r: rand.New(rand.NewPCG(seed1, seed2)), e: New(cfg), cfg: cfg, now: epoch, quorate: true,
		up: map[string]bool{}, downAt: map[string]time.Time{}, maybe: map[string]map[string]map[string]bool{}}
	w.send(Event{Kind: QuorumGained})
	for _, n := range propNodes {
		w.up[n] = true
		w.send(Event{Kind: NodeUp, Node: n})
	}
	for i := range propGroups {
		w.send(Event{Kind: CreateGroup, Group: propGroups[i].Name, Spec: &propGroups[i]})
	}
	for i := range 400 {
		w.step()
		if i%37 == 36 {
			w.roundTrip()
		}
	}
	w.settle()
}

// FuzzNeverTwice runs TestNeverTwice's model from fuzzed seeds.
func FuzzNeverTwice(f *testing.F) {
	f.Add(uint64(1), uint64(2), false)
	f.Fuzz(func(t *testing.T, seed1, seed2 uint64, deadline bool) {
		wait := time.Duration(0)
		if deadline {
			wait = 3 * time.Second
		}
		runWorld(t, seed1, seed2, wait)
	})
}

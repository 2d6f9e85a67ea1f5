package integration

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPartitionedNodeSelfFencesAndItsGroupsRestartAfterTheFence is issue
// 4's partition with resource groups: three nodes, each in its own network
// namespace, and two groups that prefer the node about to be cut off — one
// with manual failback, one with automatic — each group's first resource an
// outside observer (witnessLogGroup's log). The node's link goes down:
//
//   - the minority (the cut node's agent, hearing no quorate leader) stops
//     both groups on its own, seconds before the majority's fence device
//     (the process driver with a delay, as a BMC takes seconds) kills
//     anything: the processes are seen gone while the agent still runs;
//   - the majority marks the node suspect, then down, fences it, and only
//     then starts both groups, in order, on the next allowed node; neither
//     observer ever shows two nodes at once;
//   - the node reboots (the fence killed its agent; nothing of its network
//     stack survives), the link heals and its agent starts again in its
//     namespace: it rejoins as running, the manual group stays where it
//     is, and the automatic one moves back (stopped in reverse there,
//     started in order here) and stays, still never on two nodes.
func TestPartitionedNodeSelfFencesAndItsGroupsRestartAfterTheFence(t *testing.T) {
	// The agents self-fence after 3 s without a quorate beacon; the fence
	// device waits 5 s before it kills. The majority declares the node
	// down about 1 s after the cut, so the device kills at about 6 s, 3 s
	// after the minority's own stop: the order shows even on a busy machine.
	const (
		selfFenceAfter = 3 * time.Second
		fenceDelay     = 5 * time.Second
	)
	fenceConfig := writeProcessFenceConfig(t, t.TempDir(), map[string]string{"delay": strconv.Itoa(int(fenceDelay / time.Second))})
	c, lab := newNetCluster(t, 3, []string{"--fence-config", fenceConfig}, []string{"--self-fence-after", selfFenceAfter.String()})
	cut, next := c.node(1), c.node(2)
	allowed := []string{cut, next, c.node(3)}
	stay := observedGroup{name: "stay", dir: t.TempDir()}
	back := observedGroup{name: "back", dir: t.TempDir(), failback: "auto"}
	both := []observedGroup{stay, back}
	for _, g := range both {
		c.mustDo("POST", "/v1/groups", g.request(allowed), 201)
	}
	for _, g := range both {
		c.waitGroup(g.name, "running", isNode(cut), 20*time.Second)
		g.waitWrites(t, cut, time.Time{})
	}
	if n := countWorkloadProcs(c, cut); n == 0 {
		t.Fatalf("no process in %s's cgroups although both groups run there", cut)
	}

	// The cut. The minority's stop must come first: the test sees the
	// processes gone while the agent (which the fence kills too) still
	// runs and no fence has confirmed the node off.
	host, agent := lab.host(cut), c.agents[cut]
	cutAt := time.Now()
	lab.cut(host, cutLink)
	var stoppedAt time.Time
	c.eventually(selfFenceAfter+fenceDelay+20*time.Second, cut+"'s group processes are gone", func() error {
		if n := countWorkloadProcs(c, cut); n > 0 {
			return fmt.Errorf("%d processes left in its cgroups", n)
		}
		stoppedAt = time.Now()
		return nil
	})
	select {
	case <-agent.done:
		t.Fatalf("%s's group processes went only with its agent (%v after the cut): the fence killed them, the minority did not stop them first",
			cut, stoppedAt.Sub(cutAt).Round(time.Millisecond))
	default:
	}
	if e, ok := findEvent(c.events(), cutAt, func(e event) bool { return isFence(e, cut, "confirmed off") }); ok {
		t.Fatalf("%s was fenced (%s) before its group processes were seen gone at %s", cut, e.At.Format("15:04:05.000"), stoppedAt.Format("15:04:05.000"))
	}
	var selfFencedAt time.Time
	var selfFence string
	eventually(t, 5*time.Second, cut+"'s agent logs its self-fence", func() error {
		var ok bool
		if selfFencedAt, selfFence, ok = slogLine(agent.out.String(), "self-fencing", cutAt); !ok {
			return fmt.Errorf("no self-fencing line after the cut in its output")
		}
		return nil
	})
	if !strings.Contains(selfFence, "no quorate beacon") {
		t.Errorf("%s self-fenced for another reason than the leader's silence: %s", cut, selfFence)
	}

	// The majority: suspect, down, fenced, then both groups start on the
	// next allowed node, in order.
	for _, g := range both {
		c.waitGroup(g.name, "running", isNode(next), 30*time.Second)
	}
	restartedAt := time.Now()
	evs := eventsFrom(c.events(), cutAt)
	story := listEvents(evs)
	steps := []struct {
		what string
		is   func(event) bool
	}{
		{"running→suspect", func(e event) bool {
			return e.Kind == "node" && e.Node == cut && strings.Contains(e.Detail, "running→suspect")
		}},
		{"suspect→down", func(e event) bool {
			return e.Kind == "node" && e.Node == cut && strings.Contains(e.Detail, "suspect→down")
		}},
		{"fencing", func(e event) bool { return isFence(e, cut, ": fencing: ") }},
		{"confirmed off", func(e event) bool { return isFence(e, cut, "confirmed off") }},
	}
	at := make([]time.Time, len(steps))
	last := -1 // the index of the last step found: at the end, the confirmation
	for i, s := range steps {
		j := slices.IndexFunc(evs, s.is)
		if j <= last {
			t.Fatalf("the events after the cut do not show %s running→suspect, suspect→down, fencing, confirmed off in order (%q at %d):\n%s", cut, s.what, j, story)
		}
		at[i], last = evs[j].At, j
	}
	suspectAt, downAt, fencingAt, fencedAt := at[0], at[1], at[2], at[3]
	killableAt := fencingAt.Add(fenceDelay) // the device kills nothing before
	if fencedAt.Before(killableAt) {
		t.Errorf("the fence confirmed %s off %v after it started: the device's %v delay was not applied", cut, fencedAt.Sub(fencingAt), fenceDelay)
	}
	if !stoppedAt.Before(killableAt) || !selfFencedAt.Before(killableAt) {
		t.Errorf("the minority's stop (self-fence logged %s, processes seen gone %s) did not come before the fence device could kill (%s)",
			selfFencedAt.Format("15:04:05.000"), stoppedAt.Format("15:04:05.000"), killableAt.Format("15:04:05.000"))
	}
	var lastWrite time.Time
	for _, g := range both {
		w := g.lastWrite(t, cut)
		if !w.Before(killableAt) {
			t.Errorf("group %s still wrote on %s at %s, when the fence device may have killed it (%s)", g.name, cut, w.Format("15:04:05.000"), killableAt.Format("15:04:05.000"))
		}
		lastWrite = later(lastWrite, w)
		if first := checkStepsInOrder(t, evs, g.name, nil, []string{next + "/app", next + "/tail"}, story); first >= 0 && first < last {
			t.Errorf("group %s started on %s before the fence confirmed %s off:\n%s", g.name, next, cut, story)
		}
		g.waitWrites(t, next, time.Time{})
		checkNeverTwice(t, readWitnessLog(t, g.dir), cut, next)
	}
	t.Logf("cut → self-fence logged %v, last write there %v, processes seen gone %v; suspect %v, down %v, fencing %v, confirmed off %v (delay %v); both groups running on %s %v",
		since(cutAt, selfFencedAt), since(cutAt, lastWrite), since(cutAt, stoppedAt), since(cutAt, suspectAt), since(cutAt, downAt),
		since(cutAt, fencingAt), since(cutAt, fencedAt), fenceDelay, next, since(cutAt, restartedAt))

	// The heal. The fence killed the agent, as powering the node off
	// would; the node reboots, still cut off (nothing of its network
	// stack's past life survives), the link comes back and its agent
	// starts again in its namespace.
	select {
	case <-agent.done:
	default:
		t.Fatalf("the fence confirmed %s off but its agent still runs", cut)
	}
	lab.reboot(host)
	healAt := time.Now()
	lab.heal(host)
	c.startAgent(cut)
	var rejoinedAt, backAt time.Time
	// Both groups are watched this long after the rejoin, and the one that
	// moved back this long after it did: neither may move again.
	const hold = 3 * time.Second
	c.eventually(40*time.Second, cut+" rejoins, group "+back.name+" moves back to it and "+stay.name+" stays on "+next, func() error {
		states, err := c.nodeStates()
		if err != nil {
			return err
		}
		if states[cut] != "running" {
			return fmt.Errorf("%s is %s", cut, states[cut])
		}
		if rejoinedAt.IsZero() {
			rejoinedAt = time.Now()
		}
		sg, err := c.groupNow(stay.name)
		if err != nil {
			return err
		}
		if sg.State != "running" || sg.Node != next {
			t.Fatalf("group %s (manual failback) is %s on %q after %s rejoined (%s); it must stay running on %s", stay.name, sg.State, sg.Node, cut, sg.Reason, next)
		}
		bg, err := c.groupNow(back.name)
		if err != nil {
			return err
		}
		switch {
		case bg.State == "running" && bg.Node == cut:
			if backAt.IsZero() {
				backAt = time.Now()
			}
		case !backAt.IsZero():
			t.Fatalf("group %s (automatic failback) moved back to %s, then went %s on %q (%s)", back.name, cut, bg.State, bg.Node, bg.Reason)
		default:
			return fmt.Errorf("group %s is %s on %q (%s)", back.name, bg.State, bg.Node, bg.Reason)
		}
		if held := min(time.Since(rejoinedAt), time.Since(backAt)); held < hold {
			return fmt.Errorf("the groups have stayed put for %v of %v", held.Round(time.Millisecond), hold)
		}
		return nil
	})
	evs = eventsFrom(c.events(), healAt)
	story = listEvents(evs)
	if e, ok := findEvent(evs, healAt, func(e event) bool { return e.Group == stay.name && (e.Kind == "start" || e.Kind == "stop") }); ok {
		t.Errorf("group %s (manual failback) was touched after the heal: %s %s on %s: %s\n%s", stay.name, e.Kind, e.Resource, e.Node, e.Detail, story)
	}
	checkStepsInOrder(t, evs, back.name, []string{next + "/tail", next + "/app"}, []string{cut + "/app", cut + "/tail"}, story)
	back.waitWrites(t, cut, backAt)
	lines := readWitnessLog(t, back.dir)
	checkNeverTwice(t, slices.DeleteFunc(lines, func(l logLine) bool { return l.node == cut && l.at < restartedAt.UnixNano() }), next, cut)
	checkNeverTwice(t, readWitnessLog(t, stay.dir), cut, next)
	t.Logf("heal → %s running again %v (agent started at once), group %s back on it %v; %s stayed on %s",
		cut, since(healAt, rejoinedAt), back.name, since(healAt, backAt), stay.name, next)
}

// observedGroup is a group of two resources: app, an outside observer
// (witnessLogGroup: it appends "NODE NANOS" to dir/witness.log every 20 ms
// wherever it runs), then tail, started after it and stopped before it.
type observedGroup struct {
	name, dir, failback string
}

func (g observedGroup) request(nodes []string) map[string]any {
	req := witnessLogGroup(g.name, g.dir, nodes)
	req["resources"] = append(req["resources"].([]map[string]any), map[string]any{
		"name": "tail", "command": []string{"/bin/sleep", "3600"},
	})
	if g.failback != "" {
		req["failback"] = g.failback
	}
	return req
}

// waitWrites waits until the observer has written 5 lines on node after
// after.
func (g observedGroup) waitWrites(t *testing.T, node string, after time.Time) {
	t.Helper()
	eventually(t, 10*time.Second, fmt.Sprintf("group %s's observer writes on %s", g.name, node), func() error {
		n := 0
		for _, l := range readWitnessLog(t, g.dir) {
			if l.node == node && (after.IsZero() || l.at > after.UnixNano()) {
				n++
			}
		}
		if n < 5 {
			return fmt.Errorf("%d lines", n)
		}
		return nil
	})
}

// lastWrite is when the observer last wrote on node.
func (g observedGroup) lastWrite(t *testing.T, node string) time.Time {
	t.Helper()
	var last int64
	for _, l := range readWitnessLog(t, g.dir) {
		if l.node == node {
			last = max(last, l.at)
		}
	}
	if last == 0 {
		t.Fatalf("group %s's observer never wrote on %s", g.name, node)
	}
	return time.Unix(0, last)
}

// checkStepsInOrder asserts that in evs the group's stops were exactly
// stops and its starts exactly starts (each "node/resource", in order), and
// that every start came after the last stop. It returns the index of the
// first start in evs (-1 for none).
func checkStepsInOrder(t *testing.T, evs []event, grp string, stops, starts []string, story string) int {
	t.Helper()
	var gotStops, gotStarts []string
	lastStop, firstStart := -1, -1
	for i, e := range evs {
		if e.Group != grp {
			continue
		}
		switch e.Kind {
		case "stop":
			gotStops, lastStop = append(gotStops, e.Node+"/"+e.Resource), i
		case "start":
			gotStarts = append(gotStarts, e.Node+"/"+e.Resource)
			if firstStart < 0 {
				firstStart = i
			}
		}
	}
	if !slices.Equal(gotStops, stops) || !slices.Equal(gotStarts, starts) || firstStart >= 0 && firstStart < lastStop {
		t.Errorf("group %s: stops %v then starts %v; want stops %v, then starts %v:\n%s", grp, gotStops, gotStarts, stops, starts, story)
	}
	return firstStart
}

func isNode(name string) func(string) bool { return func(n string) bool { return n == name } }

func isFence(e event, node, detail string) bool {
	return e.Kind == "fence" && e.Node == node && strings.Contains(e.Detail, detail)
}

// eventsFrom returns the events at or after from.
func eventsFrom(evs []event, from time.Time) []event {
	return slices.DeleteFunc(evs, func(e event) bool { return e.At.Before(from) })
}

// findEvent returns the first event at or after from that is.
func findEvent(evs []event, from time.Time, is func(event) bool) (event, bool) {
	for _, e := range evs {
		if !e.At.Before(from) && is(e) {
			return e, true
		}
	}
	return event{}, false
}

// slogLine finds the first line of a text log (log/slog's TextHandler)
// logged at or after from that contains what, and returns its time.
func slogLine(out, what string, from time.Time) (time.Time, string, bool) {
	for _, l := range strings.Split(out, "\n") {
		if !strings.Contains(l, what) {
			continue
		}
		stamp, _, _ := strings.Cut(l, " ")
		if at, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(stamp, "time=")); err == nil && !at.Before(from) {
			return at, l, true
		}
	}
	return time.Time{}, "", false
}

func since(from, to time.Time) time.Duration { return to.Sub(from).Round(time.Millisecond) }

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/witness"
)

// TestTwoNodesAndAWitness is issue 4's two-node scenario with real
// processes: a `baton witness`, two `baton server`s on one NATS (one leads,
// one stands by), two agents and the process fence driver.
//
// With the witness: the leader holds the witness's vote and is quorate;
// votes change at run time and the change survives the leader's SIGKILL;
// the standby takes the lead and the witness vote with it while the group
// runs on, once, untouched; then n1 dies as in a power loss and n2 with the
// witness keeps quorum, fences n1 and only then starts the group.
//
// Without it (the control): the same cluster minus the witness (and the
// standby) loses quorum with n1, and its survivor does not start the group
// until an operator gives it 2 votes.
func TestTwoNodesAndAWitness(t *testing.T) {
	var restarted time.Duration // n1 killed → the group running on n2, with the witness
	t.Run("witness", func(t *testing.T) { restarted = twoNodesWithWitness(t) })
	t.Run("no witness", func(t *testing.T) { twoNodesWithoutWitness(t, restarted) })
}

func twoNodesWithWitness(t *testing.T) time.Duration {
	witnessAddr := freeAddr(t)
	startWitness(t, witnessAddr, t.TempDir())
	wc := witness.NewClient("http://"+witnessAddr, nil)
	cluster := "it" + uniq()
	c := newFailoverCluster(t, 2, "--name", "s1", "--expected-votes", "2", "--wait-for-all",
		"--witness", "http://"+witnessAddr, "--cluster", cluster)
	n1, n2 := c.node(1), c.node(2)
	s2 := c.startStandby("s2")

	// 1. Two nodes and the witness: 3 votes expected, 2 needed, all 3 live;
	// the witness has granted its vote to the leader, s1.
	h1 := c.health()
	c.waitQuorum("the leader holds the witness's vote", func(q quorumView) error {
		return wantQuorum(q, true, true, 3, 3, 2)
	})
	waitWitnessHolder(t, wc, cluster, "s1")
	dir := t.TempDir()
	c.mustDo("POST", "/v1/groups", witnessLogGroup("db", dir, []string{n1, n2}), 201)
	c.waitGroup("db", "running", func(n string) bool { return n == n1 }, 20*time.Second)
	waitLogLines(t, dir, 5)
	app := groupProcess(t, n1, "db", "app")

	// 2. Votes at run time: n2 at 2 votes makes 4 expected (3 nodes' and
	// the witness's), 3 needed. n2 with the witness would now be quorate on
	// its own, n1 with the witness not. The standby refuses the change.
	var q quorumView
	c.mustDo("PUT", "/v1/nodes/"+n2+"/votes", map[string]int{"votes": 2}, 200).decode(t, &q)
	if err := wantQuorum(q, true, true, 4, 4, 3); err != nil || votesOf(q, n2) != 2 {
		t.Fatalf("after setting %s's votes to 2: %v; %+v", n2, err, q)
	}
	c.mustDo("GET", "/v1/quorum", nil, 200).decode(t, &q)
	if err := wantQuorum(q, true, true, 4, 4, 3); err != nil {
		t.Fatalf("GET /v1/quorum after the votes change: %v", err)
	}
	if r := s2.mustDoStatus("PUT", "/v1/nodes/"+n2+"/votes", map[string]int{"votes": 1}); r.Status != 503 || !strings.Contains(string(r.Body), "not_leader") {
		t.Errorf("the standby answered a votes change with %d %s, want 503 not_leader", r.Status, r.Body)
	}

	// 3. SIGKILL the leader: the standby leads with a higher epoch, with the
	// votes as they were changed, and gets the witness's vote once the dead
	// leader's grant has lapsed. Meanwhile the group runs on n1, untouched.
	c.server.kill()
	killed := time.Now()
	stopWatch := watchGroupProcess(t, dir, n1, app)
	s2.waitLeader(20 * time.Second)
	led := time.Since(killed)
	h2 := s2.health()
	if h2.Epoch <= h1.Epoch || !strings.HasPrefix(h2.LeaderName, "s2-") {
		t.Fatalf("after the leader's kill: health %+v, want s2 leading with an epoch above %d", h2, h1.Epoch)
	}
	s2.waitQuorum("the new leader holds the witness's vote, with the changed votes", func(q quorumView) error {
		if votesOf(q, n2) != 2 {
			return fmt.Errorf("%s has %d votes, want the 2 set before the kill", n2, votesOf(q, n2))
		}
		return wantQuorum(q, true, true, 4, 4, 3)
	})
	witnessed := time.Since(killed)
	waitWitnessHolder(t, wc, cluster, "s2")
	t.Logf("s2 leads %v after s1's SIGKILL (epoch %d → %d) and holds the witness's vote at %v",
		led.Round(time.Millisecond), h1.Epoch, h2.Epoch, witnessed.Round(time.Millisecond))
	s2.waitGroup("db", "running", func(n string) bool { return n == n1 }, 10*time.Second)
	waitLogLines(t, dir, len(readWitnessLog(t, dir))+10) // it writes on under the new leader
	stopWatch()
	if evs := s2.events(); slices.ContainsFunc(evs, func(e event) bool { return e.Kind == "start" || e.Kind == "stop" || e.Kind == "fence" }) {
		t.Fatalf("the new leader started, stopped or fenced something though nothing failed:\n%s", formatEvents(evs))
	}
	if n := countWorkloadProcs(c, n2); n != 0 {
		t.Fatalf("%d processes run in %s's workload cgroups; the group must run only on %s", n, n2, n1)
	}

	// Back to one vote each, with the CLI, on the new leader: 3 expected, 2
	// needed, so that n2 alone is quorate only with the witness.
	out, err := exec.Command(batonBin, "node", "votes", n2, "1", "--api", s2.api).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "quorum: quorate (3 of 3 votes, 2 needed, witness granted)") {
		t.Fatalf("baton node votes %s 1: %v\n%s", n2, err, out)
	}
	s2.mustDo("GET", "/v1/quorum", nil, 200).decode(t, &q)
	if err := wantQuorum(q, true, true, 3, 3, 2); err != nil || votesOf(q, n2) != 1 {
		t.Fatalf("GET /v1/quorum after 'baton node votes %s 1': %v; %+v", n2, err, q)
	}

	// 4. n1 loses power: n2 and the witness keep quorum throughout; n1 is
	// fenced, then the group starts on n2, once.
	c.api = s2.api
	c.killNode(n1)
	killed = time.Now()
	var g group
	s2.eventually(30*time.Second, "the group runs on "+n2, func() error {
		s2.mustDo("GET", "/v1/quorum", nil, 200).decode(t, &q)
		if !q.Quorate {
			t.Fatalf("%s and the witness lost quorum after %s died: %+v", n2, n1, q)
		}
		s2.mustDo("GET", "/v1/groups/db", nil, 200).decode(t, &g)
		if g.State != "running" || g.Node != n2 {
			return fmt.Errorf("it is %s on %q (%s)", g.State, g.Node, g.Reason)
		}
		return nil
	})
	restarted := time.Since(killed)
	if err := wantQuorum(q, true, true, 2, 3, 2); err != nil {
		t.Errorf("with %s dead: %v", n1, err)
	}
	evs := s2.events()
	checkFenceBeforeStart(t, evs, n1, n2)
	if starts := startsOn(evs, ""); len(starts) != 1 || starts[0].Node != n2 || !strings.HasPrefix(starts[0].Detail, "started") {
		t.Fatalf("want one start, on %s, a success; events:\n%s", n2, formatEvents(evs))
	}
	waitLogLines(t, dir, len(readWitnessLog(t, dir))+5)
	checkNeverTwice(t, readWitnessLog(t, dir), n1, n2)
	down, fenced := eventAt(evs, "node", n1, "→down"), eventAt(evs, "fence", n1, "confirmed off")
	t.Logf("%s killed at 0: down at %v, fenced at %v, running on %s at %v",
		n1, down.Sub(killed).Round(time.Millisecond), fenced.Sub(killed).Round(time.Millisecond), n2, restarted.Round(time.Millisecond))
	return restarted
}

// twoNodesWithoutWitness is the control: two nodes, 2 expected votes, no
// witness. When n1 dies n2 alone has 1 of 2 votes: no quorum, so nothing
// fences n1 and the group never starts on n2 — watched for well over the
// time the witness cluster took to restart it there. Then a votes change
// at run time gives n2 quorum, and the group recovers.
func twoNodesWithoutWitness(t *testing.T, withWitness time.Duration) {
	c := newFailoverCluster(t, 2, "--expected-votes", "2", "--wait-for-all")
	n1, n2 := c.node(1), c.node(2)
	c.waitQuorum("two nodes are quorate", func(q quorumView) error { return wantQuorum(q, true, false, 2, 2, 2) })
	dir := t.TempDir()
	c.mustDo("POST", "/v1/groups", witnessLogGroup("db", dir, []string{n1, n2}), 201)
	c.waitGroup("db", "running", func(n string) bool { return n == n1 }, 20*time.Second)
	waitLogLines(t, dir, 5)

	c.killNode(n1)
	killed := time.Now()
	c.eventually(30*time.Second, n1+" is down", func() error {
		states, err := c.nodeStates()
		if err != nil {
			return err
		}
		if states[n1] != "down" {
			return fmt.Errorf("%s is %s", n1, states[n1])
		}
		return nil
	})
	window := max(5*time.Second, 3*withWitness)
	var q quorumView
	var g group
	for end := time.Now().Add(window); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		c.mustDo("GET", "/v1/quorum", nil, 200).decode(t, &q)
		if err := wantQuorum(q, false, false, 1, 2, 2); err != nil {
			t.Fatalf("%s alone, without a witness: %v", n2, err)
		}
		c.mustDo("GET", "/v1/groups/db", nil, 200).decode(t, &g)
		// Recovering on n1: waiting for n1's fence, which an inquorate
		// partition never starts.
		if g.State != "recovering" || g.Node != n1 || !strings.HasPrefix(g.Reason, "node down") || !strings.Contains(g.Reason, "no quorum") {
			t.Fatalf("without quorum the group is %s on %q (%s); want it recovering on %s (node down), waiting for a fence", g.State, g.Node, g.Reason, n1)
		}
		if n := countWorkloadProcs(c, n2); n != 0 {
			t.Fatalf("%d processes run in %s's workload cgroups without quorum", n, n2)
		}
	}
	evs := c.events()
	if slices.ContainsFunc(evs, func(e event) bool { return e.Kind == "start" && e.Node == n2 || e.Kind == "fence" }) {
		t.Fatalf("an inquorate partition fenced or started something:\n%s", formatEvents(evs))
	}
	for _, l := range readWitnessLog(t, dir) {
		if l.node != n1 {
			t.Fatalf("the group wrote from %s without quorum", l.node)
		}
	}
	t.Logf("%s killed at 0; at %v the group is still %s (%s), quorum %s",
		n1, time.Since(killed).Round(time.Millisecond), g.State, g.Reason, q.Reason)

	// Only quorum held it back: 2 votes for n2, at run time, make n2 alone
	// quorate (2 of 3 votes, 2 needed); then n1 is fenced and the group
	// starts on n2.
	c.mustDo("PUT", "/v1/nodes/"+n2+"/votes", map[string]int{"votes": 2}, 200).decode(t, &q)
	if err := wantQuorum(q, true, false, 2, 3, 2); err != nil {
		t.Fatalf("after setting %s's votes to 2: %v", n2, err)
	}
	voted := time.Now()
	c.waitGroup("db", "running", func(n string) bool { return n == n2 }, 30*time.Second)
	t.Logf("running on %s %v after its votes were raised", n2, time.Since(voted).Round(time.Millisecond))
	evs = c.events()
	checkFenceBeforeStart(t, evs, n1, n2)
	// At the first try: n2's agent, fenced by the leader's word that it had
	// no quorum, waits for the quorate beacon instead of failing the start.
	if starts := startsOn(evs, n2); len(starts) != 1 || !strings.HasPrefix(starts[0].Detail, "started") {
		t.Fatalf("want one start on %s, a success; events:\n%s", n2, formatEvents(evs))
	}
	waitLogLines(t, dir, len(readWitnessLog(t, dir))+5)
	checkNeverTwice(t, readWitnessLog(t, dir), n1, n2)
}

// quorumView is the body of GET /v1/quorum and PUT /v1/nodes/NAME/votes.
type quorumView struct {
	Quorate       bool   `json:"quorate"`
	LiveVotes     int    `json:"live_votes"`
	ExpectedVotes int    `json:"expected_votes"`
	Needed        int    `json:"needed"`
	Witness       bool   `json:"witness"`
	WitnessVotes  int    `json:"witness_votes"`
	Reason        string `json:"reason"`
	Nodes         []struct {
		Node  string `json:"node"`
		Votes int    `json:"votes"`
		Live  bool   `json:"live"`
	} `json:"nodes"`
}

// healthView is the body of GET /v1/health.
type healthView struct {
	Leader     bool   `json:"leader"`
	Epoch      uint64 `json:"epoch"`
	LeaderName string `json:"leader_name"`
}

// startStandby starts a second server named name on c's NATS, with c's
// server flags, and waits until it answers as a follower.
func (c *cluster) startStandby(name string) *cluster {
	c.t.Helper()
	addr := freeAddr(c.t)
	startProc(c.t, "standby server "+name, append(append([]string{"server", "--api", addr, "--nats", c.natsURL,
		"--data-dir", filepath.Join(c.dataDir, name), "--log-level", "debug"}, c.serverArgs...), "--name", name)...)
	sc := &cluster{t: c.t, natsURL: c.natsURL, api: "http://" + addr, apiAddr: addr, dataDir: c.dataDir, prefix: c.prefix, agents: c.agents}
	sc.eventually(20*time.Second, "the standby "+name+" answers as a follower", func() error {
		r, err := sc.get("/v1/health")
		if err != nil {
			return err
		}
		var h healthView
		if err := json.Unmarshal(r.Body, &h); err != nil || h.Leader {
			return fmt.Errorf("not a follower: %s", r.Body)
		}
		return nil
	})
	return sc
}

func (c *cluster) health() healthView {
	c.t.Helper()
	var h healthView
	c.mustDo("GET", "/v1/health", nil, 200).decode(c.t, &h)
	return h
}

// waitQuorum polls GET /v1/quorum until ok accepts it.
func (c *cluster) waitQuorum(what string, ok func(quorumView) error) {
	c.t.Helper()
	c.eventually(20*time.Second, what, func() error {
		r, err := c.get("/v1/quorum")
		if err != nil {
			return err
		}
		var q quorumView
		if err := json.Unmarshal(r.Body, &q); err != nil {
			return fmt.Errorf("%w: %s", err, r.Body)
		}
		return ok(q)
	})
}

// wantQuorum checks the quorum's decision and figures.
func wantQuorum(q quorumView, quorate, witness bool, live, expected, needed int) error {
	if q.Quorate != quorate || q.Witness != witness || q.LiveVotes != live || q.ExpectedVotes != expected || q.Needed != needed {
		return fmt.Errorf("quorum is quorate=%v witness=%v %d of %d votes, %d needed (%s); want quorate=%v witness=%v %d of %d, %d needed",
			q.Quorate, q.Witness, q.LiveVotes, q.ExpectedVotes, q.Needed, q.Reason, quorate, witness, live, expected, needed)
	}
	return nil
}

func votesOf(q quorumView, node string) int {
	for _, n := range q.Nodes {
		if n.Node == node {
			return n.Votes
		}
	}
	return -1
}

// waitWitnessHolder waits until the witness's only grant for cluster is to
// the server named server (a holder's id is its name and a random suffix).
func waitWitnessHolder(t *testing.T, wc *witness.Client, cluster, server string) {
	t.Helper()
	eventually(t, 20*time.Second, "the witness grants its vote to "+server, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		st, err := wc.Status(ctx)
		if err != nil {
			return err
		}
		var holders []string
		for _, g := range st.Grants {
			if g.Cluster == cluster {
				holders = append(holders, g.Holder)
			}
		}
		if len(holders) != 1 || !strings.HasPrefix(holders[0], server+"-") {
			return fmt.Errorf("grants for %s: %v", cluster, holders)
		}
		return nil
	})
}

func waitLogLines(t *testing.T, dir string, n int) {
	t.Helper()
	eventually(t, 10*time.Second, fmt.Sprintf("the group's log has %d lines", n), func() error {
		if got := len(readWitnessLog(t, dir)); got < n {
			return fmt.Errorf("%d lines", got)
		}
		return nil
	})
}

// runningProcess is a process, told apart from a later one with its pid by
// its start time.
type runningProcess struct {
	pid   int
	start string
}

// groupProcess returns the main process of a group resource on node: the
// one in its cgroup whose parent is not (the loop's $(date) subshells and
// sleeps come and go under it).
func groupProcess(t *testing.T, node, group, resource string) runningProcess {
	t.Helper()
	procs := filepath.Join("/sys/fs/cgroup/pids/baton", node, "grp_"+group+"_"+resource, "cgroup.procs")
	var p runningProcess
	eventually(t, 10*time.Second, "the group's process is in "+procs, func() error {
		b, err := os.ReadFile(procs)
		if err != nil {
			return err
		}
		pids := map[string]bool{}
		for _, s := range strings.Fields(string(b)) {
			pids[s] = true
		}
		var mains []int
		for s := range pids {
			if pid, _ := strconv.Atoi(s); !pids[strconv.Itoa(parentOf(pid))] {
				mains = append(mains, pid)
			}
		}
		if len(mains) != 1 {
			return fmt.Errorf("want one main process in %v, found %v", pids, mains)
		}
		p = runningProcess{mains[0], processStart(mains[0])}
		return nil
	})
	return p
}

// statFields returns the fields of /proc/PID/stat after the command name
// (the first is the state, field 3), or nil.
func statFields(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(b)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
}

func parentOf(pid int) int {
	if f := statFields(pid); len(f) > 1 {
		ppid, _ := strconv.Atoi(f[1])
		return ppid
	}
	return 0
}

// processStart returns pid's start time in clock ticks since boot (field
// 22), "" if it is gone.
func processStart(pid int) string {
	if f := statFields(pid); len(f) > 19 {
		return f[19]
	}
	return ""
}

// watchGroupProcess fails the test (at stop) if, while it watches, the
// group's process p on node ends or another node writes to the group's
// log: a leader handover must leave a running group alone.
func watchGroupProcess(t *testing.T, dir, node string, p runningProcess) (stop func()) {
	t.Helper()
	done, result := make(chan struct{}), make(chan error, 1)
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if processStart(p.pid) != p.start {
				result <- fmt.Errorf("the group's process %d on %s ended during the handover", p.pid, node)
				return
			}
			b, err := os.ReadFile(filepath.Join(dir, "witness.log")) // not readWitnessLog: no t.Fatal off the test's goroutine
			for _, l := range strings.Split(string(b), "\n") {
				if f := strings.Fields(l); err == nil && len(f) == 2 && f[0] != node {
					err = fmt.Errorf("the group wrote from %s during the handover", f[0])
				}
			}
			if err != nil {
				result <- err
				return
			}
			select {
			case <-done:
				result <- nil
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	var err error
	end := func() { once.Do(func() { close(done); err = <-result }) }
	t.Cleanup(end)
	return func() {
		t.Helper()
		if end(); err != nil {
			t.Fatal(err)
		}
	}
}

// startsOn returns the start events (successes and failures) on node, or
// on every node if node is "".
func startsOn(evs []event, node string) []event {
	return slices.DeleteFunc(slices.Clone(evs), func(e event) bool { return e.Kind != "start" || node != "" && e.Node != node })
}

func eventAt(evs []event, kind, node, detail string) time.Time {
	for _, e := range evs {
		if e.Kind == kind && e.Node == node && strings.Contains(e.Detail, detail) {
			return e.At
		}
	}
	return time.Time{}
}

func formatEvents(evs []event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "  %s %-10s %-20s %s\n", e.At.Format("15:04:05.000"), e.Kind, e.Node, e.Detail)
	}
	return b.String()
}

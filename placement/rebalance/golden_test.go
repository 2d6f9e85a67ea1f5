package rebalance

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/placement"
)

var update = flag.Bool("update", false, "rewrite testdata/*.txt with the current output")

// TestGolden runs the scripts in testdata/*.txt. A script is a list of
// commands; the lines indented by two spaces under a command are its output,
// checked against the current output (or rewritten with -update, to be
// reviewed in the diff). Commands:
//
//	policy LEVEL [watch=memory,cpu] [max-per-node=N] [max-per-cluster=N] [cooldown=D] [max-frozen=D]
//	node NAME cap=CPU/MEM [free=CPU/MEM] [drained] [no-criu] [state=S] [labels=k=v,...]
//	workload NAME node=N rss=MiB [req=CPU/MEM] [prio=N] [moved=D] [failures=N] [nodes=a,..] [avoid=a,..] [anti=w,..] [labels=k=v,..]
//	report NODE|all [free=CPU/MEM] [xN]   one report (N reports) with this measured headroom
//	plan                                  what Decide answers now
//	apply                                 start the last plan's moves: workloads move, migrations in flight
//	settle                                migrations end and the nodes' reports show them
//	advance D                             the clock moves on
//
// CPU is millicores, MEM MiB; moved=D means the workload last moved D ago.
func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txt")
	if len(files) == 0 {
		t.Fatal("no testdata/*.txt scripts")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got := runScript(t, string(data))
			if *update {
				if err := os.WriteFile(f, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != string(data) {
				t.Errorf("%s differs from the current output (run go test ./placement/rebalance -run TestGolden -update and review the diff):\n%s", f, diffLines(string(data), got))
			}
		})
	}
}

func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want %q\n  got  %q\n", i+1, wl, gl)
		}
	}
	return b.String()
}

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// scenario is the cluster a script builds.
type scenario struct {
	t         *testing.T
	now       time.Time
	policy    Policy
	nodes     []Node
	workloads []Workload
	pending   []Pending
	tracker   *Tracker
	last      Plan
}

func runScript(t *testing.T, script string) string {
	sc := &scenario{t: t, now: epoch, tracker: NewTracker()}
	sc.policy, _ = PolicyFor(Conservative)
	var out strings.Builder
	lines := bufio.NewScanner(strings.NewReader(script))
	for lines.Scan() {
		line := lines.Text()
		if strings.HasPrefix(line, "  ") {
			continue // the previous run's output
		}
		out.WriteString(line + "\n")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for _, o := range sc.do(strings.Fields(line)) {
			out.WriteString("  " + o + "\n")
		}
	}
	return out.String()
}

func kv(args []string) (map[string]string, map[string]bool) {
	vals, flags := map[string]string{}, map[string]bool{}
	for _, a := range args {
		if k, v, ok := strings.Cut(a, "="); ok {
			vals[k] = v
		} else {
			flags[a] = true
		}
	}
	return vals, flags
}

func (sc *scenario) res(s string) placement.Resources {
	cpu, mem, ok := strings.Cut(s, "/")
	c, err1 := strconv.ParseInt(strings.TrimSuffix(cpu, "m"), 10, 64)
	m, err2 := strconv.ParseInt(mem, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		sc.t.Fatalf("bad resources %q: want CPU/MEM, e.g. 4000m/8192", s)
	}
	return placement.Resources{CPUMillis: c, MemoryMB: m}
}

func (sc *scenario) dur(s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		sc.t.Fatalf("bad duration %q", s)
	}
	return d
}

func (sc *scenario) num(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		sc.t.Fatalf("bad number %q", s)
	}
	return n
}

func list(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func labels(s string) map[string]string {
	if s == "" {
		return nil
	}
	m := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func (sc *scenario) node(name string) *Node {
	for i := range sc.nodes {
		if sc.nodes[i].Name == name {
			return &sc.nodes[i]
		}
	}
	sc.t.Fatalf("no node %q", name)
	return nil
}

func (sc *scenario) do(f []string) []string {
	vals, flags := kv(f[1:])
	switch f[0] {
	case "policy":
		p, err := PolicyFor(Level(f[1]))
		if err != nil {
			return []string{"error: " + err.Error()}
		}
		if v, ok := vals["watch"]; ok {
			if err := p.ParseWatch(v); err != nil {
				return []string{"error: " + err.Error()}
			}
		}
		if v, ok := vals["max-per-node"]; ok {
			p.MaxPerNode = sc.num(v)
		}
		if v, ok := vals["max-per-cluster"]; ok {
			p.MaxPerCluster = sc.num(v)
		}
		if v, ok := vals["cooldown"]; ok {
			p.Cooldown = sc.dur(v)
		}
		if v, ok := vals["max-frozen"]; ok {
			p.MaxFrozen = sc.dur(v)
		}
		sc.policy = p
		return []string{fmt.Sprintf("hot under %s free for %d reports, cool from %s for %d; budgets %d/node %d/cluster; cooldown %s; watching %s",
			pct(p.HotFree), p.HotReports, pct(p.CoolFree), p.CoolReports, p.MaxPerNode, p.MaxPerCluster, p.Cooldown, p.Watched())}
	case "node":
		n := Node{Name: f[1], State: "running", Ready: true, CanMigrate: !flags["no-criu"], Drained: flags["drained"],
			Capacity: sc.res(vals["cap"]), Labels: labels(vals["labels"])}
		n.Headroom = n.Capacity
		if v, ok := vals["free"]; ok {
			n.Headroom = sc.res(v)
		}
		if v, ok := vals["state"]; ok {
			n.State, n.Ready = v, v == "running"
		}
		sc.nodes = append(sc.nodes, n)
	case "workload":
		w := Workload{ID: "w-" + f[1], Name: f[1], Node: vals["node"], RSSMB: int64(sc.num(vals["rss"])),
			Constraints: placement.Constraints{Nodes: list(vals["nodes"]), AvoidNodes: list(vals["avoid"]),
				AntiAffinity: list(vals["anti"]), Labels: labels(vals["labels"])}}
		if v, ok := vals["req"]; ok {
			w.Requests = sc.res(v)
		}
		if v, ok := vals["prio"]; ok {
			w.Priority = sc.num(v)
		}
		if v, ok := vals["moved"]; ok {
			w.LastMoved = sc.now.Add(-sc.dur(v))
		}
		if v, ok := vals["failures"]; ok {
			w.DrainFailures = sc.num(v)
		}
		sc.node(w.Node)
		sc.workloads = append(sc.workloads, w)
	case "report":
		names := []string{f[1]}
		if f[1] == "all" {
			names = nil
			for _, n := range sc.nodes {
				names = append(names, n.Name)
			}
		}
		times := 1
		for a := range flags {
			if strings.HasPrefix(a, "x") {
				times = sc.num(a[1:])
			}
		}
		var out []string
		for _, name := range names {
			n := sc.node(name)
			if v, ok := vals["free"]; ok {
				n.Headroom = sc.res(v)
			}
			var h Heat
			var flips []string
			for i := range times {
				var changed bool
				h, changed = sc.tracker.Observe(name, n.Capacity, n.Headroom, sc.policy)
				if changed {
					flips = append(flips, fmt.Sprintf("turns %s at report %d", map[bool]string{true: "hot", false: "cool"}[h.Hot], i+1))
				}
			}
			line := fmt.Sprintf("%s: %s reading (%s) ×%d, streaks hot %d cool %d, %s", name, h.Reading, h.Why, times,
				h.HotStreak, h.CoolStreak, map[bool]string{true: "HOT", false: "not hot"}[h.Hot])
			if len(flips) > 0 {
				line += "; " + strings.Join(flips, ", ")
			}
			out = append(out, line)
		}
		return out
	case "advance":
		sc.now = sc.now.Add(sc.dur(f[1]))
		return []string{"now " + sc.now.Sub(epoch).String()}
	case "plan":
		in := sc.input()
		sc.last = Decide(in)
		checkPlan(sc.t, in, sc.last)
		return render(sc.last)
	case "apply":
		for _, m := range sc.last.Moves {
			for i := range sc.workloads {
				w := &sc.workloads[i]
				if w.ID != m.Workload {
					continue
				}
				if m.Kind != KindDrainRestart {
					sc.pending = append(sc.pending, Pending{Workload: w.ID, Source: w.Node, Target: m.To,
						MemoryMB: w.RSSMB, CPUMillis: w.Requests.CPUMillis, InFlight: true})
					w.LastMoved = sc.now
				}
				w.Node = m.To
			}
		}
		return []string{fmt.Sprintf("%d moves started, %d migrations in flight", len(sc.last.Moves), len(sc.pending))}
	case "settle":
		for _, pm := range sc.pending {
			sc.node(pm.Source).Headroom.MemoryMB += pm.MemoryMB
			sc.node(pm.Source).Headroom.CPUMillis += pm.CPUMillis
			sc.node(pm.Target).Headroom.MemoryMB -= pm.MemoryMB
			sc.node(pm.Target).Headroom.CPUMillis -= pm.CPUMillis
		}
		n := len(sc.pending)
		sc.pending = nil
		return []string{fmt.Sprintf("%d migrations ended and reported", n)}
	default:
		sc.t.Fatalf("unknown command %q", f[0])
	}
	return nil
}

// input builds Decide's input; Reserved and Workloads of each node follow
// from the workloads placed there, the heat from the tracker.
func (sc *scenario) input() Input {
	in := Input{Now: sc.now, Policy: sc.policy, Workloads: slices.Clone(sc.workloads), Pending: slices.Clone(sc.pending)}
	for _, n := range sc.nodes {
		n.Heat = sc.tracker.Heat(n.Name)
		n.Reserved, n.Workloads = placement.Resources{}, nil
		for _, w := range sc.workloads {
			if w.Node == n.Name {
				n.Reserved.CPUMillis += w.Requests.CPUMillis
				n.Reserved.MemoryMB += w.Requests.MemoryMB
				n.Workloads = append(n.Workloads, w.Name)
			}
		}
		in.Nodes = append(in.Nodes, n)
	}
	return in
}

func render(p Plan) []string {
	out := []string{fmt.Sprintf("policy %s, imbalance %.3f → %.3f, hot [%s]", p.Policy, p.Imbalance, p.ImbalanceAfter, strings.Join(p.Hot, " "))}
	for _, m := range p.Moves {
		out = append(out, fmt.Sprintf("move %s %s %s → %s (rss %d MiB, frozen %.0f ms, benefit %.3f, score %.3f)",
			m.Kind, m.WorkloadName, m.From, m.To, m.RSSMB, m.PredictedFrozenMS, m.Benefit, m.Score))
		out = append(out, "  "+m.Reason)
	}
	for _, s := range p.Skipped {
		out = append(out, fmt.Sprintf("skip %s on %s: %s", s.WorkloadName, s.Node, s.Reason))
	}
	for _, n := range p.Notes {
		out = append(out, "note: "+n)
	}
	return out
}

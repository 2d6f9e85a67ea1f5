package groups

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden scripts' expected output")

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// TestScripts runs the scenarios in testdata/*.txt. Lines before "----" are
// set-up and events; after it, the actions each event produced and the final
// state. Run with -update to regenerate, then review the diff.
//
// Set-up lines (before any event):
//
//	config self-fence-wait=5s stop-within=2s fence-retry=0 threshold=3
//	fence NODE DEVICE[,DEVICE...]     fence levels of NODE, in order
//
// Event lines start with a time since the epoch:
//
//	TIME node-up|node-suspect|node-leaving|node-down|fence-node NODE
//	TIME fenced|fence-failed NODE LEVEL
//	TIME quorum-gained|quorum-lost|tick
//	TIME started|stopped|failed|monitor-failed GROUP RESOURCE NODE
//	TIME create GROUP resources=NAME[:KIND][/RESTARTS],... [nodes=N1,N2] [failback=auto] [threshold=N] [failure-timeout=D]
//	TIME delete GROUP | move GROUP [NODE] | reset-failures GROUP [NODE]
//	TIME ack        every start and stop outstanding on an up node succeeds, in order
func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts in testdata: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			script, want, _ := strings.Cut(string(raw), "----\n")
			got := runScript(t, script)
			if *update {
				if err := os.WriteFile(file, []byte(script+"----\n"+got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != want {
				t.Errorf("%s: output differs (run with -update and review the diff)\n--- got\n%s--- want\n%s", file, got, want)
			}
		})
	}
}

type harness struct {
	t       *testing.T
	cfg     Config
	e       *Engine
	pending []Action // starts and stops not yet reported
	b       strings.Builder
}

func (h *harness) engine() *Engine {
	if h.e == nil {
		if err := h.cfg.Validate(); err != nil {
			h.t.Fatal(err)
		}
		h.e = New(h.cfg)
	}
	return h.e
}

func (h *harness) apply(ev Event, indent string) {
	acts := h.engine().Handle(ev)
	// An event that reports a start or stop settles it.
	h.settle(ev)
	for _, a := range acts {
		fmt.Fprintf(&h.b, "%s%s\n", indent, a)
		if a.Kind == StartResource || a.Kind == StopResource {
			h.pending = append(h.pending, a)
		}
	}
}

func (h *harness) settle(ev Event) {
	for i, p := range h.pending {
		if p.Group == ev.Group && p.Resource == ev.Resource && p.Node == ev.Node {
			h.pending = append(h.pending[:i], h.pending[i+1:]...)
			return
		}
	}
}

func (h *harness) ack(at time.Time) {
	for len(h.pending) > 0 {
		var p Action
		found := false
		for _, c := range h.pending {
			if n, ok := h.e.nodes[c.Node]; ok && n.State != NodeIsDown {
				p, found = c, true
				break
			}
		}
		if !found {
			return
		}
		kind := ResourceStarted
		if p.Kind == StopResource {
			kind = ResourceStopped
		}
		fmt.Fprintf(&h.b, "  > %s %s/%s on %s\n", kind, p.Group, p.Resource, p.Node)
		h.apply(Event{Kind: kind, At: at, Group: p.Group, Resource: p.Resource, Node: p.Node}, "    ")
	}
}

func parseGroup(t *testing.T, name string, args []string) *Group {
	g := &Group{Name: name}
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		switch k {
		case "resources":
			for _, r := range strings.Split(v, ",") {
				r, restarts, _ := strings.Cut(r, "/")
				n, kind, _ := strings.Cut(r, ":")
				if kind == "" {
					kind = string(Process)
				}
				res := Resource{Name: n, Kind: Kind(kind), Monitor: Monitor{Interval: time.Second, Timeout: time.Second}}
				if restarts != "" {
					res.Monitor.Restarts, _ = strconv.Atoi(restarts)
				}
				g.Resources = append(g.Resources, res)
			}
		case "nodes":
			g.Nodes = strings.Split(v, ",")
		case "failback":
			g.Failback = Failback(v)
		case "threshold":
			g.FailureThreshold, _ = strconv.Atoi(v)
		case "failure-timeout":
			g.FailureTimeout, _ = time.ParseDuration(v)
		default:
			t.Fatalf("create %s: unknown argument %q", name, a)
		}
	}
	return g
}

func runScript(t *testing.T, script string) string {
	t.Helper()
	h := &harness{t: t, cfg: DefaultConfig()}
	sc := bufio.NewScanner(strings.NewReader(script))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		bad := func() { t.Fatalf("bad script line %q", line) }
		switch f[0] {
		case "config":
			for _, kv := range f[1:] {
				k, v, _ := strings.Cut(kv, "=")
				d, _ := time.ParseDuration(v)
				switch k {
				case "self-fence-wait":
					h.cfg.SelfFenceWait = d
				case "stop-within":
					h.cfg.StopWithin = d
				case "fence-retry":
					h.cfg.FenceRetry = d
				case "threshold":
					h.cfg.FailureThreshold, _ = strconv.Atoi(v)
				default:
					bad()
				}
			}
			continue
		case "fence":
			if len(f) != 3 {
				bad()
			}
			if h.cfg.FenceLevels == nil {
				h.cfg.FenceLevels = map[string][]string{}
			}
			h.cfg.FenceLevels[f[1]] = strings.Split(f[2], ",")
			continue
		}
		d, err := time.ParseDuration(f[0])
		if err != nil || len(f) < 2 {
			bad()
		}
		at := epoch.Add(d)
		fmt.Fprintf(&h.b, "%s\n", line)
		ev := Event{Kind: EventKind(f[1]), At: at}
		args := f[2:]
		arg := func(i int) string {
			if i < len(args) {
				return args[i]
			}
			return ""
		}
		switch ev.Kind {
		case "ack":
			h.engine()
			h.ack(at)
			continue
		case NodeUp, NodeSuspect, NodeLeaving, NodeDown, FenceNode:
			ev.Node = arg(0)
		case Fenced, FenceFailed:
			ev.Node = arg(0)
			ev.Level, _ = strconv.Atoi(arg(1))
		case QuorumGained, QuorumLost, Tick:
		case ResourceStarted, ResourceStopped, ResourceFailed, MonitorFailed:
			ev.Group, ev.Resource, ev.Node = arg(0), arg(1), arg(2)
		case CreateGroup:
			ev.Group = arg(0)
			ev.Spec = parseGroup(t, arg(0), args[1:])
		case DeleteGroup, MoveGroup, ResetFailures:
			ev.Group, ev.Node = arg(0), arg(1)
		default:
			bad()
		}
		h.apply(ev, "  ")
	}
	h.engine()
	h.b.WriteString("final:\n")
	q := "quorate"
	if !h.e.Quorate() {
		q = "not quorate"
	}
	fmt.Fprintf(&h.b, "  %s\n", q)
	for _, n := range h.e.Nodes() {
		extra := ""
		if n.State == NodeIsDown {
			extra = fmt.Sprintf(" unclean=%v fenced=%v", n.Unclean, n.Fenced)
		}
		fmt.Fprintf(&h.b, "  node %s %s%s\n", n.Name, n.State, extra)
	}
	for _, g := range h.e.Groups() {
		var rs []string
		for i, r := range g.Resources {
			rs = append(rs, g.Spec.Resources[i].Name+"="+string(r))
		}
		var fs []string
		for _, n := range sortedKeys(g.Failures) {
			fs = append(fs, fmt.Sprintf("%s:%d", n, g.Failures[n]))
		}
		fmt.Fprintf(&h.b, "  group %s %s on %q [%s] failures [%s] (%s)\n", g.Spec.Name, g.State, g.Node, strings.Join(rs, " "), strings.Join(fs, " "), g.Reason)
	}
	return h.b.String()
}

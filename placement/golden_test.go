package placement

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the expected decisions in testdata/*.txt")

// TestGolden runs the scenarios in testdata/*.txt. A scenario is a cluster
// and a request, a line "----", and Plan's decision rendered by
// renderDecision (Place's must be the same cut to its limits).
// With -update the part after "----" is rewritten; review it in the diff.
//
// The input part is one directive a line; blank lines and lines starting
// with # are comments:
//
//	node NAME [state=S] cap=CPU/MEM [headroom=CPU/MEM] [reserved=CPU/MEM] [labels=k=v,...] [runs=w,...]
//	request WORKLOAD [cpu=CPU] [mem=MEM] [strategy=S] [nodes=a,...] [avoid=a,...] [labels=k=v,...] [anti=w,...]
//
// CPU is cores ("2", "0.5") or millicores ("250m"); MEM is MiB ("512"),
// "512Mi" or "1.5Gi". A node is ready when its state is running, the
// default. Headroom defaults to the capacity, reserved to zero.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no scenarios in testdata")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			input, want, ok := strings.Cut(string(data), "\n----\n")
			if !ok && !*update {
				t.Fatalf("%s: no ---- line between the scenario and the expected decision", file)
			}
			nodes, req := parseScenario(t, file, input)
			d, err := placeAndPlan(t, nodes, req)
			got := renderDecision(d, err)
			if *update {
				if err := os.WriteFile(file, []byte(input+"\n----\n"+got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != want {
				t.Errorf("%s: decision differs (run go test ./placement -run TestGolden -update and review the diff)\n--- got\n%s--- want\n%s", file, got, want)
			}
		})
	}
}

// renderDecision shows a decision the way a dry run would.
func renderDecision(d Decision, err error) string {
	var b strings.Builder
	line := func(parts ...string) {
		b.WriteString(strings.Join(parts, ""))
		b.WriteByte('\n')
	}
	if errors.Is(err, ErrInvalidRequest) {
		line("error: ", err.Error())
		return b.String()
	}
	line("strategy: ", string(d.Strategy))
	node := d.Node
	if node == "" {
		node = "(none)"
	}
	line("node: ", node)
	line("candidates:")
	width := 0
	for _, c := range d.Candidates {
		width = max(width, len(c.Node))
	}
	for i, c := range d.Candidates {
		line("  ", strconv.Itoa(i+1), ". ", c.Node, strings.Repeat(" ", width-len(c.Node)), "  ", strconv.FormatFloat(c.Score, 'f', 4, 64))
	}
	line("rejections:")
	for _, r := range d.Rejections {
		line("  ", r.Filter, ": ", strconv.Itoa(r.Count), " [", strings.Join(r.Nodes, " "), "] ", r.Reason)
	}
	line("explain: ", d.Explain())
	if err != nil {
		line("error: ", err.Error())
	} else {
		line("error: none")
	}
	return b.String()
}

func parseScenario(t *testing.T, file, input string) ([]Node, Request) {
	t.Helper()
	var nodes []Node
	var req Request
	haveReq := false
	for i, raw := range strings.Split(input, "\n") {
		text := strings.TrimSpace(raw)
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fail := func(msg string) { t.Fatalf("%s:%d: %s: %q", file, i+1, msg, raw) }
		fields := strings.Fields(text)
		if len(fields) < 2 {
			fail("want a directive and a name")
		}
		switch fields[0] {
		case "node":
			n := Node{Name: fields[1], State: "running"}
			headroomSet := false
			for _, f := range fields[2:] {
				k, v, ok := strings.Cut(f, "=")
				if !ok {
					fail("want key=value, got " + f)
				}
				switch k {
				case "state":
					n.State = v
				case "cap":
					n.Capacity = parseResources(v, fail)
				case "headroom":
					n.Headroom, headroomSet = parseResources(v, fail), true
				case "reserved":
					n.Reserved = parseResources(v, fail)
				case "labels":
					n.Labels = parseLabels(v, fail)
				case "runs":
					n.Workloads = strings.Split(v, ",")
				default:
					fail("unknown node key " + k)
				}
			}
			n.Ready = n.State == "running"
			if !headroomSet {
				n.Headroom = n.Capacity
			}
			nodes = append(nodes, n)
		case "request":
			if haveReq {
				fail("second request")
			}
			haveReq = true
			req.Workload = fields[1]
			for _, f := range fields[2:] {
				k, v, ok := strings.Cut(f, "=")
				if !ok {
					fail("want key=value, got " + f)
				}
				switch k {
				case "cpu":
					req.Resources.CPUMillis = parseCPU(v, fail)
				case "mem":
					req.Resources.MemoryMB = parseMemory(v, fail)
				case "strategy":
					req.Strategy = Strategy(v)
				case "nodes":
					req.Constraints.Nodes = strings.Split(v, ",")
				case "avoid":
					req.Constraints.AvoidNodes = strings.Split(v, ",")
				case "labels":
					req.Constraints.Labels = parseLabels(v, fail)
				case "anti":
					req.Constraints.AntiAffinity = strings.Split(v, ",")
				default:
					fail("unknown request key " + k)
				}
			}
		default:
			fail("unknown directive " + fields[0])
		}
	}
	if !haveReq {
		t.Fatalf("%s: no request line", file)
	}
	return nodes, req
}

func parseResources(v string, fail func(string)) Resources {
	cpu, mem, ok := strings.Cut(v, "/")
	if !ok {
		fail("want CPU/MEM, got " + v)
	}
	return Resources{CPUMillis: parseCPU(cpu, fail), MemoryMB: parseMemory(mem, fail)}
}

func parseCPU(v string, fail func(string)) int64 {
	if m, ok := strings.CutSuffix(v, "m"); ok {
		n, err := strconv.ParseInt(m, 10, 64)
		if err != nil {
			fail(err.Error())
		}
		return n
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		fail(err.Error())
	}
	return int64(f*1000 + 0.5)
}

func parseMemory(v string, fail func(string)) int64 {
	unit := 1.0
	if n, ok := strings.CutSuffix(v, "Gi"); ok {
		v, unit = n, 1024
	} else if n, ok := strings.CutSuffix(v, "Mi"); ok {
		v = n
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		fail(err.Error())
	}
	return int64(f*unit + 0.5)
}

func parseLabels(v string, fail func(string)) map[string]string {
	labels := map[string]string{}
	for _, kv := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(kv, "=")
		if !ok {
			fail("want label k=v, got " + kv)
		}
		labels[k] = val
	}
	return labels
}

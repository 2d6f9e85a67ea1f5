package integration

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkFailover measures the time from a node's death (its agent and
// workloads killed with SIGKILL, as a power loss) to its group running on
// another node, over BATON_FAILOVER_RUNS runs (default 20), with Baton's
// default detection (250 ms liveness beats, then a direct probe) and, in
// the same run, with the classic heartbeat timeout (the agents' default 1 s
// heartbeats, down after 6 s of silence) as the baseline. It prints a table; run it with
// make bench-failover. b.N is ignored: one pass is the measurement.
func BenchmarkFailover(b *testing.B) {
	runs := 20
	if v, err := strconv.Atoi(os.Getenv("BATON_FAILOVER_RUNS")); err == nil && v > 0 {
		runs = v
	}
	type row struct {
		name  string
		times []time.Duration
	}
	var rows []row
	for _, mode := range []struct{ name, detection, interval string }{
		{"baton (250 ms beats + probe)", "probe", "250ms"},
		{"heartbeat timeout, 1 s beats (baseline)", "timeout", "1s"},
	} {
		c := newFailoverClusterWith(b, 3, []string{"--interval", mode.interval}, "--failure-detection", mode.detection)
		c.mustDo("POST", "/v1/groups", map[string]any{"name": "bench", "resources": []map[string]any{
			{"name": "app", "command": []string{"/bin/sleep", "inf"}}}}, 201)
		var times []time.Duration
		for i := range runs {
			g := c.waitGroup("bench", "running", func(n string) bool { return n != "" }, 60*time.Second)
			victim := g.Node
			killed := time.Now()
			c.killNode(victim)
			var after group
			deadline := time.Now().Add(60 * time.Second)
			for {
				r, err := c.get("/v1/groups/bench")
				if err == nil && r.Status == 200 {
					r.decode(b, &after)
					if after.State == "running" && after.Node != victim && after.Node != "" {
						break
					}
				}
				if time.Now().After(deadline) {
					b.Fatalf("run %d: the group did not come back within 60 s: %+v", i+1, after)
				}
				time.Sleep(5 * time.Millisecond)
			}
			times = append(times, time.Since(killed))
			// Power the victim back on and let it rejoin before the next run.
			c.startAgent(victim)
			c.waitNodesRunning(3)
		}
		rows = append(rows, row{mode.name, times})
		c.server.kill()
		for _, a := range c.agents {
			a.kill()
		}
		c.killWorkloads()
	}
	fmt.Printf("\nFailover: node killed (agent + workloads, SIGKILL) → its group running on another node; %d runs each, 3 nodes, fence by the process driver\n\n", runs)
	fmt.Printf("| detection | p50 | p99 | min | max |\n|---|---|---|---|---|\n")
	p := func(ts []time.Duration, q float64) time.Duration {
		s := slices.Clone(ts)
		slices.Sort(s)
		return s[min(len(s)-1, int(q*float64(len(s))))]
	}
	for _, r := range rows {
		fmt.Printf("| %s | %.2f s | %.2f s | %.2f s | %.2f s |\n", r.name, p(r.times, 0.5).Seconds(), p(r.times, 0.99).Seconds(),
			slices.Min(r.times).Seconds(), slices.Max(r.times).Seconds())
	}
	fmt.Printf("\nbaseline p50 / baton p50: %.1fx\n", p(rows[1].times, 0.5).Seconds()/p(rows[0].times, 0.5).Seconds())
}

// BenchmarkNoFalseFailoverUnderLoad runs a 3-node cluster with a group
// while every CPU of the machine is saturated by busy loops for
// BATON_LOAD_DURATION (default 10m), and counts the nodes declared down and
// the group's moves: both must be zero. Run it with make bench-failover-load.
func BenchmarkNoFalseFailoverUnderLoad(b *testing.B) {
	d := 10 * time.Minute
	if v, err := time.ParseDuration(os.Getenv("BATON_LOAD_DURATION")); err == nil {
		d = v
	}
	c := newFailoverCluster(b, 3)
	c.mustDo("POST", "/v1/groups", map[string]any{"name": "steady", "resources": []map[string]any{
		{"name": "app", "command": []string{"/bin/sleep", "inf"}, "monitor": map[string]any{"command": []string{"/bin/true"}, "interval": "1s", "timeout": "1s"}}}}, 201)
	start := c.waitGroup("steady", "running", func(n string) bool { return n != "" }, 60*time.Second)
	began := time.Now()
	// Two busy loops per CPU, at normal priority, in one process group.
	loops := 2 * runtime.NumCPU()
	hog := exec.Command("/bin/sh", "-c", strings.Repeat("while :; do :; done & ", loops)+"wait")
	hog.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := hog.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = syscall.Kill(-hog.Process.Pid, syscall.SIGKILL); _ = hog.Wait() }()
	suspects, downs, moves := 0, 0, 0
	for time.Since(began) < d {
		time.Sleep(5 * time.Second)
		g := c.waitGroup("steady", "running", func(string) bool { return true }, time.Minute)
		if g.Node != start.Node {
			moves++
			start = g
		}
	}
	_ = syscall.Kill(-hog.Process.Pid, syscall.SIGKILL)
	for _, e := range c.events() {
		if e.Kind == "node" && e.At.After(began) {
			switch {
			case strings.Contains(e.Detail, "→down"):
				downs++
			case strings.Contains(e.Detail, "→suspect"):
				suspects++
			}
		}
	}
	fmt.Printf("\nNo false failover: %s with %d busy loops on %d CPUs, 3 nodes, one group\n\n", d, loops, runtime.NumCPU())
	fmt.Printf("| nodes suspected (probe answered) | nodes declared down | group moves |\n|---|---|---|\n| %d | %d | %d |\n", suspects, downs, moves)
	if downs > 0 || moves > 0 {
		b.Errorf("false failover under CPU load: %d nodes down, %d group moves", downs, moves)
	}
}

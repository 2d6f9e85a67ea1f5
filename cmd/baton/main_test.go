package main

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/scheduler"
	"github.com/batonhq/baton/scheduler/store"
	"github.com/batonhq/baton/wire"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestEveryCommandHasHelp(t *testing.T) {
	for _, c := range commands {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run([]string{c.name, "--help"}, &out, &errOut)
			help := out.String() + errOut.String()
			if code != 0 {
				t.Fatalf("baton %s --help exited %d", c.name, code)
			}
			if !strings.Contains(help, "Usage: baton "+c.name) {
				t.Errorf("baton %s --help does not show its usage:\n%s", c.name, help)
			}
		})
	}
	for _, c := range nodeVerbs {
		t.Run("node "+c.name, func(t *testing.T) {
			var out bytes.Buffer
			if code := run([]string{"node", c.name, "--help"}, &out, &out); code != 0 || !strings.Contains(out.String(), "Usage: baton node "+c.name) {
				t.Errorf("baton node %s --help: exit %d\n%s", c.name, code, out.String())
			}
		})
	}
	var out bytes.Buffer
	if code := run([]string{"help"}, &out, &out); code != 0 || !strings.Contains(out.String(), "dev") {
		t.Errorf("baton help: exit %d\n%s", code, out.String())
	}
}

func TestBadUsageSaysWhatIsWrong(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"unknown flag", []string{"status", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{"stray argument", []string{"status", "extra"}, 2, `unexpected argument "extra"`},
		{"unreachable API", []string{"status", "--api", "http://127.0.0.1:1"}, 1, "cannot reach the Baton API"},
		{"bad labels", []string{"agent", "--labels", "novalue", "--name", "x"}, 1, "--labels"},
		{"bad node name", []string{"agent", "--name", "a.b", "--data-dir", os.TempDir()}, 1, "node name"},
		{"too many dev nodes", []string{"dev", "--nodes", "0"}, 1, "--nodes 0"},
		{"migrate without a workload", []string{"migrate"}, 2, "name the workload to move"},
		{"migrate with an unreachable API", []string{"migrate", "web", "--api", "http://127.0.0.1:1"}, 1, "cannot reach the Baton API"},
		{"bad strategy", []string{"server", "--strategy", "random", "--data-dir", os.TempDir()}, 1, "--strategy"},
		{"witness on a bad address", []string{"witness", "--listen", "256.0.0.1:1", "--data-dir", os.TempDir()}, 1, "--listen 256.0.0.1:1"},
		{"witness with a stray argument", []string{"witness", "now"}, 2, `unexpected argument "now"`},
		{"bad rebalance level", []string{"server", "--rebalance", "wild", "--data-dir", os.TempDir()}, 1, "--rebalance"},
		{"bad rebalance resource", []string{"server", "--rebalance-on", "disk", "--data-dir", os.TempDir()}, 1, "--rebalance-on"},
		{"drain without a node", []string{"node", "drain"}, 2, "give the node's name"},
		{"drain with an unreachable API", []string{"node", "drain", "n1", "--api", "http://127.0.0.1:1"}, 1, "cannot reach the Baton API"},
		{"undrain with an unreachable API", []string{"node", "undrain", "n1", "--api", "http://127.0.0.1:1"}, 1, "cannot reach the Baton API"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			code := run(tc.args, &out, &out)
			if code != tc.code || !strings.Contains(out.String(), tc.want) {
				t.Errorf("baton %v: exit %d, output:\n%s\nwant exit %d and %q", tc.args, code, out.String(), tc.code, tc.want)
			}
		})
	}
}

func TestRenderStatusGolden(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	nodes := []scheduler.NodeView{
		{Name: "node-1", State: "running", Capacity: wire.Capacity{CPUs: 2, CPUMillis: 2000, MemoryMB: 24576},
			Headroom: wire.Headroom{CPUMillis: 1500, MemoryMB: 20480, Load1: 0.42}, Reserved: wire.Resources{CPUMillis: 250, MemoryMB: 128},
			Workloads: 1, LastHeartbeat: now.Add(-300 * time.Millisecond)},
		{Name: "node-2", State: "down", Drain: "draining", Capacity: wire.Capacity{CPUs: 2, CPUMillis: 2000, MemoryMB: 24576},
			Headroom: wire.Headroom{CPUMillis: 200, MemoryMB: 2048, Load1: 3.1}, LastHeartbeat: now.Add(-9 * time.Second)},
	}
	exit := 1
	workloads := []store.Workload{
		{ID: "w-1", Name: "web", Node: "node-1", State: "running", HostPID: 4242, Desired: store.DesiredRunning,
			Command: []string{"/usr/bin/python3", "-m", "http.server"}, Resources: wire.Resources{CPUMillis: 250, MemoryMB: 128}},
		{ID: "w-2", Name: "batch", Node: "node-2", State: "failed", ExitCode: &exit, Desired: store.DesiredDeleted,
			Command: []string{"/bin/sh", "-c", "a very long command line that goes on and on and on"}},
	}
	var b bytes.Buffer
	renderStatus(&b, "http://127.0.0.1:7480", "this server leads (epoch 7)", now, nodes, workloads)
	golden := "testdata/status.golden"
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Errorf("status output differs from %s (run with -update and review):\n%s", golden, b.String())
	}
}

package membership

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden scripts' expected output")

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// TestScripts runs the scenarios in testdata/*.txt. Each line before "----" is
// an event: "hb NODE AT [INTERVAL]", "leave NODE AT", "tick AT" or
// "probe NODE AT ok|failed", with times as durations since an epoch (a first
// line "config failover" selects FailoverConfig instead of DefaultConfig); everything after "----" is the transitions and
// the final table the events must produce. Run with -update to regenerate.
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

func runScript(t *testing.T, script string) string {
	t.Helper()
	tab := NewTable(DefaultConfig())
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(script))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		at := func(s string) time.Time {
			d, err := time.ParseDuration(s)
			if err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			return epoch.Add(d)
		}
		var tr []Transition
		var probes []Probe
		switch {
		case f[0] == "config" && len(f) == 2 && f[1] == "failover":
			tab = NewTable(FailoverConfig())
			continue
		case f[0] == "probe" && len(f) == 4 && (f[3] == "ok" || f[3] == "failed"):
			tr = tab.ProbeResult(f[1], f[3] == "ok", at(f[2]))
		case f[0] == "hb" && len(f) >= 3:
			var iv time.Duration
			if len(f) == 4 {
				iv, _ = time.ParseDuration(f[3])
			}
			tr = tab.Heartbeat(f[1], iv, at(f[2]))
		case f[0] == "leave" && len(f) == 3:
			tr = tab.Leave(f[1], at(f[2]))
		case f[0] == "tick" && len(f) == 2:
			up := tab.Step(at(f[1]))
			tr, probes = up.Transitions, up.Probes
		default:
			t.Fatalf("bad script line %q", line)
		}
		for _, x := range tr {
			fmt.Fprintf(&b, "%s: %s\n", line, x)
		}
		for _, p := range probes {
			fmt.Fprintf(&b, "%s: %s\n", line, p)
		}
	}
	b.WriteString("final:\n")
	for _, m := range tab.List() {
		fmt.Fprintf(&b, "  %s %s since %s\n", m.Name, m.State, m.Since.Sub(epoch))
	}
	return b.String()
}

func TestTransitions(t *testing.T) {
	at := func(s float64) time.Time { return epoch.Add(time.Duration(s * float64(time.Second))) }
	tests := []struct {
		name  string
		steps func(*Table)
		node  string
		want  State
	}{
		{"one heartbeat joins", func(tb *Table) { tb.Heartbeat("n1", 0, at(0)) }, "n1", Joining},
		{"two heartbeats run", func(tb *Table) { tb.Heartbeat("n1", 0, at(0)); tb.Heartbeat("n1", 0, at(1)) }, "n1", Running},
		{"silence below suspect keeps running", func(tb *Table) {
			tb.Heartbeat("n1", 0, at(0))
			tb.Heartbeat("n1", 0, at(1))
			tb.Tick(at(3.9))
		}, "n1", Running},
		{"three intervals of silence suspect", func(tb *Table) {
			tb.Heartbeat("n1", 0, at(0))
			tb.Heartbeat("n1", 0, at(1))
			tb.Tick(at(4))
		}, "n1", Suspect},
		{"six intervals of silence down", func(tb *Table) {
			tb.Heartbeat("n1", 0, at(0))
			tb.Heartbeat("n1", 0, at(1))
			tb.Tick(at(7))
		}, "n1", Down},
		{"slow node judged by its own interval", func(tb *Table) {
			tb.Heartbeat("n1", 5*time.Second, at(0))
			tb.Heartbeat("n1", 5*time.Second, at(5))
			tb.Tick(at(15))
		}, "n1", Running},
		{"suspect recovers on heartbeat", func(tb *Table) {
			tb.Heartbeat("n1", 0, at(0))
			tb.Heartbeat("n1", 0, at(1))
			tb.Tick(at(4))
			tb.Heartbeat("n1", 0, at(4.5))
		}, "n1", Running},
		{"down rejoins through joining", func(tb *Table) {
			tb.Heartbeat("n1", 0, at(0))
			tb.Heartbeat("n1", 0, at(1))
			tb.Tick(at(10))
			tb.Heartbeat("n1", 0, at(11))
		}, "n1", Joining},
		{"leave exits", func(tb *Table) {
			tb.Heartbeat("n1", 0, at(0))
			tb.Heartbeat("n1", 0, at(1))
			tb.Leave("n1", at(1.5))
			tb.Tick(at(3))
		}, "n1", Exiting},
		{"exited node goes down after silence", func(tb *Table) {
			tb.Heartbeat("n1", 0, at(0))
			tb.Leave("n1", at(0.5))
			tb.Tick(at(8))
		}, "n1", Down},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := NewTable(DefaultConfig())
			tc.steps(tb)
			m, ok := tb.Get(tc.node)
			if !ok || m.State != tc.want {
				t.Fatalf("node %s: state %q (known %v), want %q", tc.node, m.State, ok, tc.want)
			}
		})
	}
}

func TestLeaveOfUnknownNodeIsIgnored(t *testing.T) {
	tb := NewTable(DefaultConfig())
	if tr := tb.Leave("ghost", epoch); tr != nil {
		t.Fatalf("leave of unknown node gave %v", tr)
	}
	if len(tb.List()) != 0 {
		t.Fatal("unknown node was added")
	}
}

func TestProbe(t *testing.T) {
	ms := func(n int) time.Time { return epoch.Add(time.Duration(n) * time.Millisecond) }
	start := func() *Table {
		tb := NewTable(FailoverConfig())
		tb.Heartbeat("n1", 0, ms(0))
		tb.Heartbeat("n1", 0, ms(250))
		return tb
	}
	tests := []struct {
		name  string
		steps func(*testing.T, *Table)
		want  State
	}{
		{"silence alone only suspects", func(t *testing.T, tb *Table) {
			up := tb.Step(ms(1000))
			if len(up.Probes) != 1 || up.Probes[0].Node != "n1" || !up.Probes[0].Deadline.Equal(ms(1300)) {
				t.Fatalf("probes %v, want one for n1 due at 1.3s", up.Probes)
			}
			if up := tb.Step(ms(1100)); len(up.Probes) != 0 {
				t.Fatalf("a second probe while one is outstanding: %v", up.Probes)
			}
		}, Suspect},
		{"failed probe downs", func(t *testing.T, tb *Table) {
			tb.Step(ms(1000))
			if tr := tb.ProbeResult("n1", false, ms(1050)); len(tr) != 1 || tr[0].To != Down {
				t.Fatalf("transitions %v, want down", tr)
			}
		}, Down},
		{"unanswered probe downs at its deadline", func(t *testing.T, tb *Table) {
			tb.Step(ms(1000))
			tb.Step(ms(1299))
			if m, _ := tb.Get("n1"); m.State != Suspect {
				t.Fatalf("down before the probe deadline")
			}
			tb.Step(ms(1300))
		}, Down},
		{"busy node answers and is never failed over", func(t *testing.T, tb *Table) {
			now := 1000
			for i := 0; i < 100; i++ { // a minute of silence, answering every probe
				for _, p := range tb.Step(ms(now)).Probes {
					tb.ProbeResult(p.Node, true, ms(now+100))
				}
				now += 600
			}
		}, Suspect},
		{"heartbeat after an answered probe runs again", func(t *testing.T, tb *Table) {
			tb.Step(ms(1000))
			tb.ProbeResult("n1", true, ms(1100))
			tb.Heartbeat("n1", 0, ms(1200))
		}, Running},
		{"stale probe result ignored", func(t *testing.T, tb *Table) {
			tb.Step(ms(1000))
			tb.Heartbeat("n1", 0, ms(1100))
			tb.ProbeResult("n1", false, ms(1150))
		}, Running},
		{"exiting node goes down on silence without a probe", func(t *testing.T, tb *Table) {
			tb.Leave("n1", ms(300))
			if up := tb.Step(ms(2000)); len(up.Probes) != 0 {
				t.Fatalf("probed an exiting node: %v", up.Probes)
			}
		}, Down},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := start()
			tc.steps(t, tb)
			if m, _ := tb.Get("n1"); m.State != tc.want {
				t.Fatalf("n1 is %s, want %s", m.State, tc.want)
			}
		})
	}
}

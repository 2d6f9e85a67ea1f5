package migrate

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

var update = flag.Bool("update", false, "rewrite testdata/*.txt with the current output")

// epoch is time zero of the golden scripts; "t=1.5s" is epoch+1.5s.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// TestGolden runs the scripts in testdata/*.txt. A script is a list of
// commands; the lines indented by two spaces under a command are its output,
// checked against the current output (or rewritten with -update). Commands:
//
//	new mode=M [max-rounds=N] [converged=N] [timeout=D] [timeout.PHASE=D]
//	resume mode=M phase=P          (Resume: the driver stopped in phase P at t=0)
//	t=D EVENT [pages=N] [bytes=N] [pid=N] [round=N] [phase=P] [reason="..."]
//	report
//	resolve req=M src=F,F dst=F,F rss=BYTES link=BYTES/s [post-copy-ok] [fallback] [max-frozen=D]
//
// Features F: dirty, lazy, uffd (or "none").
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
				t.Errorf("%s differs from the current output (run go test ./migrate -run TestGolden -update and review the diff):\n%s", f, diffLines(string(data), got))
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

func runScript(t *testing.T, script string) string {
	var out strings.Builder
	var m *Machine
	sc := bufio.NewScanner(strings.NewReader(script))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "  ") {
			continue // old output
		}
		out.WriteString(line + "\n")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		emit := func(format string, a ...any) { fmt.Fprintf(&out, "  "+format+"\n", a...) }
		args := tokens(t, line)
		kv := map[string]string{}
		for _, a := range args[1:] {
			k, v, _ := strings.Cut(a, "=")
			kv[k] = v
		}
		switch cmd := args[0]; {
		case cmd == "resume":
			cfg := Config{ID: "m1", Workload: "w1", Source: "n1", Target: "n2", Mode: Mode(kv["mode"])}
			var acts []Action
			var err error
			m, acts, err = Resume(cfg, Phase(kv["phase"]), epoch.Add(-time.Minute), epoch)
			if err != nil {
				emit("error: %v", err)
				continue
			}
			emit("phase %s", m.Phase())
			for _, a := range acts {
				emit("do %s", a)
			}
			s, tg := m.Copies()
			emit("copies source=%s target=%s", s, tg)
		case cmd == "new":
			cfg := Config{ID: "m1", Workload: "w1", Source: "n1", Target: "n2", Mode: Mode(kv["mode"])}
			cfg.MaxPreDumpRounds = atoi(t, kv["max-rounds"])
			cfg.ConvergedPages = int64(atoi(t, kv["converged"]))
			cfg.Timeout = dur(t, kv["timeout"])
			for k, v := range kv {
				if p, ok := strings.CutPrefix(k, "timeout."); ok {
					if cfg.PhaseTimeouts == nil {
						cfg.PhaseTimeouts = map[Phase]time.Duration{}
					}
					cfg.PhaseTimeouts[Phase(p)] = dur(t, v)
				}
			}
			var acts []Action
			var err error
			m, acts, err = New(cfg, epoch)
			if err != nil {
				emit("error: %v", err)
				continue
			}
			emit("phase %s", m.Phase())
			for _, a := range acts {
				emit("do %s", a)
			}
		case strings.HasPrefix(cmd, "t="):
			if m == nil {
				t.Fatalf("%q before new", line)
			}
			ev := Event{Kind: EventKind(args[1]), At: epoch.Add(dur(t, cmd[2:]))}
			ev.Pages = int64(atoi(t, kv["pages"]))
			ev.Bytes = int64(atoi(t, kv["bytes"]))
			ev.PID = atoi(t, kv["pid"])
			ev.Round = atoi(t, kv["round"])
			ev.Phase = Phase(kv["phase"])
			ev.Reason = kv["reason"]
			before := m.Phase()
			acts := m.Step(ev)
			if m.Phase() != before {
				emit("phase %s → %s", before, m.Phase())
			} else if len(acts) == 0 && before.Final() {
				emit("(ignored: the migration is over)")
			} else if len(acts) == 0 && ev.Kind == EvTick {
				emit("(within the timeout)")
			} else if len(acts) == 0 {
				last := m.rep.Transitions[len(m.rep.Transitions)-1]
				emit("(%s)", last.Note)
			}
			for _, a := range acts {
				emit("do %s", a)
			}
			s, tg := m.Copies()
			emit("copies source=%s target=%s", s, tg)
		case cmd == "report":
			r := m.Report()
			emit("mode %s, phase %s, frozen %s, bytes %d, target pid %d", r.Mode, r.Phase, r.Frozen, r.BytesMoved, r.TargetPID)
			if r.Reason != "" {
				emit("reason: %s", r.Reason)
			}
			if len(r.PreDumpPages) > 0 {
				emit("pre-dump pages per round: %v", r.PreDumpPages)
			}
			var ph []string
			for _, p := range r.Phases {
				ph = append(ph, fmt.Sprintf("%s %s", p.Phase, p.Duration))
			}
			emit("phases: %s", strings.Join(ph, ", "))
			if !r.Ended.IsZero() {
				emit("total: %s", r.Ended.Sub(r.Started))
			}
			for _, tr := range r.Transitions {
				s := fmt.Sprintf("%s %s → %s", tr.At.Sub(epoch), tr.From, tr.To)
				if tr.From == "" {
					s = fmt.Sprintf("%s start %s", tr.At.Sub(epoch), tr.To)
				}
				if tr.Event != "" {
					s += " on " + string(tr.Event)
				}
				if tr.Note != "" {
					s += ": " + tr.Note
				}
				emit("%s", s)
			}
		case cmd == "resolve":
			p := Policy{AllowPostCopy: has(kv, "post-copy-ok"), Fallback: has(kv, "fallback"), MaxFrozen: dur(t, kv["max-frozen"])}
			mode, why, err := Resolve(Mode(kv["req"]), features(kv["src"]), features(kv["dst"]), int64(atoi(t, kv["rss"])), int64(atoi(t, kv["link"])), p)
			if err != nil {
				emit("error: %v", err)
			} else {
				emit("%s: %s", mode, why)
			}
		default:
			t.Fatalf("unknown command %q", line)
		}
	}
	return out.String()
}

func has(kv map[string]string, k string) bool { _, ok := kv[k]; return ok }

func features(s string) Features {
	var f Features
	for _, x := range strings.Split(s, ",") {
		switch x {
		case "dirty":
			f.MemDirtyTrack = true
		case "predump":
			f.PreDumpRounds = true
		case "lazy":
			f.LazyPages = true
		case "uffd":
			f.UFFD = true
		}
	}
	return f
}

// tokens splits a line on spaces, keeping key="quoted value" together.
func tokens(t *testing.T, line string) []string {
	var out []string
	for line = strings.TrimSpace(line); line != ""; line = strings.TrimSpace(line) {
		i := strings.IndexByte(line, ' ')
		q := strings.Index(line, `="`)
		if q >= 0 && (i < 0 || q < i) {
			v, err := strconv.QuotedPrefix(line[q+1:])
			if err != nil {
				t.Fatalf("bad quoting in %q: %v", line, err)
			}
			uq, _ := strconv.Unquote(v)
			out = append(out, line[:q+1]+uq)
			line = line[q+1+len(v):]
			continue
		}
		if i < 0 {
			i = len(line)
		}
		out = append(out, line[:i])
		line = line[i:]
	}
	return out
}

func atoi(t *testing.T, s string) int {
	if s == "" {
		return 0
	}
	mult := 1
	for suf, m := range map[string]int{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if x, ok := strings.CutSuffix(s, suf); ok {
			s, mult = x, m
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("bad number %q", s)
	}
	return n * mult
}

func dur(t *testing.T, s string) time.Duration {
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("bad duration %q", s)
	}
	return d
}

package replay

import (
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/batonhq/baton/placement"
)

var traceDir = flag.String("trace", "", "directory of the openb trace (nodes.csv, pods.csv); "+
	"default $BATON_TRACE_DIR, else ../shared/traces/openb from the repository root")

// BenchmarkReplay replays the openb trace (see doc.go) in both modes through
// Baton's bin-pack and spread and the random-fit and best-fit baselines, in
// the same run. Each case reports decisions per second (a replay without
// the fragmentation measurement, building the placer not timed), the share
// of tasks placed, the mean fragmentation met by arriving tasks and, for
// fill, the share of the cluster's CPU allocated when it is full. It needs
// the trace and fails, saying where it looked, when the trace is not there.
func BenchmarkReplay(b *testing.B) {
	tr := openbTrace(b)
	placers := []struct {
		name string
		make func() Placer
	}{
		{"binpack", func() Placer { return mustNewBaton(b, tr, placement.BinPack) }},
		{"spread", func() Placer { return mustNewBaton(b, tr, placement.Spread) }},
		{"random-fit", func() Placer { return NewRandomFit(1) }},
		{"best-fit", func() Placer { return BestFit{} }},
	}
	for _, mode := range []Mode{InTimeOrder, Fill} {
		for _, p := range placers {
			b.Run(mode.String()+"/"+p.name, func(b *testing.B) {
				measured := Replay(tr, p.make(), Options{Mode: mode, Fragmentation: true})
				decisions := 0
				for b.Loop() {
					b.StopTimer()
					placer := p.make()
					b.StartTimer()
					decisions += Replay(tr, placer, Options{Mode: mode}).Decisions
				}
				b.ReportMetric(float64(decisions)/b.Elapsed().Seconds(), "decisions/s")
				b.ReportMetric(100*measured.PlacedShare(), "placed-%")
				b.ReportMetric(100*measured.Fragmentation, "frag-%")
				b.ReportMetric(100*AllocatedCPU(measured.End), "cpu-alloc-%")
				b.ReportMetric(float64(measured.Decisions), "tasks")
			})
		}
	}
}

func mustNewBaton(b *testing.B, tr Trace, s placement.Strategy) Placer {
	p, err := NewBaton(tr, s)
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// openbTrace reads the trace from -trace, $BATON_TRACE_DIR or
// ../shared/traces/openb beside the repository.
func openbTrace(tb testing.TB) Trace {
	tb.Helper()
	dir := *traceDir
	if dir == "" {
		dir = os.Getenv("BATON_TRACE_DIR")
	}
	if dir == "" {
		dir = filepath.Join(repoRoot(tb), "..", "shared", "traces", "openb")
	}
	dir, _ = filepath.Abs(dir)
	open := func(name string) *os.File {
		f, err := os.Open(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			tb.Fatalf("the openb trace is not where this benchmark looked: %s has no %s; "+
				"pass -trace DIR (make bench-placement TRACE=DIR) or set BATON_TRACE_DIR", dir, name)
		}
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { f.Close() })
		return f
	}
	nodes, err := ReadNodes(open("nodes.csv"))
	if err != nil {
		tb.Fatalf("%s/nodes.csv: %v", dir, err)
	}
	tasks, err := ReadTasks(open("pods.csv"))
	if err != nil {
		tb.Fatalf("%s/pods.csv: %v", dir, err)
	}
	return Trace{Nodes: nodes, Tasks: tasks}
}

// repoRoot is the directory of go.mod above the test's directory.
func repoRoot(tb testing.TB) string {
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			tb.Fatalf("no go.mod above %s: pass -trace DIR", dir)
		}
	}
}

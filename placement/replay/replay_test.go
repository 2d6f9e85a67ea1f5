package replay

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/batonhq/baton/internal/deptest"
	"github.com/batonhq/baton/placement"
)

// tinyNodes and tinyTasks are a trace small enough to follow by hand (see
// TestReplay). Columns the reader ignores are there as in the openb files.
const tinyNodes = `sn,cpu_milli,memory_mib,gpu,model
a,4000,8192,0,
b,2000,4096,0,
`

const tinyTasks = `name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time
t3,2000,2048,0,0,,LS,Running,2,30,2
t1,1000,1024,0,0,,LS,Running,0,10,0
t2,1000,1024,0,0,,LS,Running,1,20,1
t4,3000,2048,0,0,,LS,Running,15,,15
`

var tinyCapacity = placement.Resources{CPUMillis: 4000, MemoryMB: 8192}

func tinyTrace(t *testing.T) Trace {
	t.Helper()
	nodes, err := ReadNodes(strings.NewReader(tinyNodes))
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := ReadTasks(strings.NewReader(tinyTasks))
	if err != nil {
		t.Fatal(err)
	}
	return Trace{Nodes: nodes, Tasks: tasks}
}

func TestRead(t *testing.T) {
	tr := tinyTrace(t)
	if len(tr.Nodes) != 2 || tr.Nodes[1] != (Node{Name: "b", Capacity: placement.Resources{CPUMillis: 2000, MemoryMB: 4096}}) {
		t.Errorf("nodes = %+v", tr.Nodes)
	}
	var names []string
	for _, task := range tr.Tasks {
		names = append(names, task.Name)
	}
	if strings.Join(names, " ") != "t1 t2 t3 t4" {
		t.Errorf("tasks in order %v, want by arrival t1 t2 t3 t4", names)
	}
	if tr.Tasks[2] != (Task{Name: "t3", Request: placement.Resources{CPUMillis: 2000, MemoryMB: 2048}, Arrival: 2, Departure: 30}) {
		t.Errorf("t3 = %+v", tr.Tasks[2])
	}
	if tr.Tasks[3].Departure != NoDeparture {
		t.Errorf("t4 has no deletion time, departure = %d", tr.Tasks[3].Departure)
	}
	if got := Typical(tr.Tasks); got != (placement.Resources{CPUMillis: 2000, MemoryMB: 2048}) {
		t.Errorf("Typical = %+v", got)
	}
}

func TestReadErrors(t *testing.T) {
	tests := []struct {
		name, nodes, tasks, want string
	}{
		{"empty", "", "", "empty file"},
		{"missing column", "sn,cpu_milli\na,1\n", "", `no column "memory_mib"`},
		{"short line", "sn,cpu_milli,memory_mib\na,1\n", "", "line 2 has 2 fields, the header 3"},
		{"negative", "sn,cpu_milli,memory_mib\na,1,-5\n", "", `line 2, column memory_mib: want a non-negative integer, got "-5"`},
		{"repeated node", "sn,cpu_milli,memory_mib\na,1,1\na,2,2\n", "", `line 3, column sn: node "a" appears twice`},
		{"departure first", "", "name,cpu_milli,memory_mib,creation_time,deletion_time\nt,1,1,10,9\n", "line 2, column deletion_time: departure before arrival (10)"},
		{"not a number", "", "name,cpu_milli,memory_mib,creation_time,deletion_time\nt,1,1,x,9\n", `column creation_time: want a non-negative integer, got "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.tasks == "" {
				_, err = ReadNodes(strings.NewReader(tt.nodes))
			} else {
				_, err = ReadTasks(strings.NewReader(tt.tasks))
			}
			if !errors.Is(err, ErrBadTrace) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want ErrBadTrace saying %q", err, tt.want)
			}
		})
	}
}

// TestReplay follows the tiny trace by hand. Typical task: 2 CPU, 2 GiB.
//
// Bin-pack, in time order: t1 and t2 fill b (fullest after placement); t3
// goes to a (2 CPU left). t1 leaves b at 10. t4 (3 CPU) at 15 fits nowhere
// (a has 2, b 1). Fragmentation met by the arrivals: 0; 0.2 (b's 1 free
// CPU of 5 cannot take the typical task); 0 (b has none free); 1/3 (b's 1
// of 3). Best-fit makes the same choices. Spread puts t1, t2 and t3 on a
// (emptiest after; ties by name): at 15 a has 1 CPU, b 2: t4 fits nowhere;
// fragmentation 0, 0, 0, 1/3.
//
// Fill: t1..t4 ask 7 CPU of 6 and stop; every placer places 3 of them,
// 4 CPU allocated of 6.
func TestReplay(t *testing.T) {
	tr := tinyTrace(t)
	binpack, err := NewBaton(tr, placement.BinPack)
	if err != nil {
		t.Fatal(err)
	}
	spread, err := NewBaton(tr, placement.Spread)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		placer    Placer
		mode      Mode
		placed    int
		frag      float64
		allocated float64 // at the end
	}{
		{"bin-pack in time order", binpack, InTimeOrder, 3, (0 + 0.2 + 0 + 1.0/3) / 4, 0},
		{"spread in time order", spread, InTimeOrder, 3, (0 + 0 + 0 + 1.0/3) / 4, 0},
		{"best-fit in time order", BestFit{}, InTimeOrder, 3, (0 + 0.2 + 0 + 1.0/3) / 4, 0},
		{"bin-pack fill", mustBaton(t, tr, placement.BinPack), Fill, 3, (0 + 0.2 + 0 + 0) / 4, 4.0 / 6},
		{"spread fill", mustBaton(t, tr, placement.Spread), Fill, 3, (0 + 0 + 0 + 0) / 4, 4.0 / 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Replay(tr, tt.placer, Options{Mode: tt.mode, Fragmentation: true})
			if res.Decisions != 4 || res.Placed != tt.placed {
				t.Errorf("placed %d of %d, want %d of 4", res.Placed, res.Decisions, tt.placed)
			}
			if math.Abs(res.Fragmentation-tt.frag) > 1e-12 {
				t.Errorf("fragmentation %v, want %v", res.Fragmentation, tt.frag)
			}
			if got := AllocatedCPU(res.End); math.Abs(got-tt.allocated) > 1e-12 {
				t.Errorf("CPU allocated at the end %v, want %v", got, tt.allocated)
			}
		})
	}
}

func mustBaton(t *testing.T, tr Trace, s placement.Strategy) *Baton {
	t.Helper()
	b, err := NewBaton(tr, s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRandomFit checks that RandomFit only places where a task fits (Replay
// panics otherwise), that the same seed makes the same choices, and that
// in time order every node is free again at the end.
func TestRandomFit(t *testing.T) {
	tr := tinyTrace(t)
	tr.Tasks[3].Departure = 40
	first := Replay(tr, NewRandomFit(1), Options{})
	if first.Decisions != 4 || AllocatedCPU(first.End) != 0 {
		t.Errorf("%d decisions, %v CPU allocated at the end", first.Decisions, AllocatedCPU(first.End))
	}
	for seed := range uint64(20) {
		a := Replay(tr, NewRandomFit(seed), Options{Mode: Fill})
		b := Replay(tr, NewRandomFit(seed), Options{Mode: Fill})
		if a.Placed != b.Placed || AllocatedCPU(a.End) != AllocatedCPU(b.End) {
			t.Fatalf("seed %d: two runs differ", seed)
		}
	}
}

func TestFragmentation(t *testing.T) {
	typical := placement.Resources{CPUMillis: 1000, MemoryMB: 1024}
	nodes := []NodeState{
		{Name: "cpu-only", Free: placement.Resources{CPUMillis: 3000, MemoryMB: 512}}, // lacks memory: 3000 stranded
		{Name: "usable", Free: placement.Resources{CPUMillis: 1000, MemoryMB: 1024}},  // fits exactly
		{Name: "crumbs", Free: placement.Resources{CPUMillis: 500, MemoryMB: 65536}},  // lacks CPU: 500 stranded
		{Name: "full", Free: placement.Resources{CPUMillis: 0, MemoryMB: 0}},          // nothing free
		{Name: "roomy", Free: placement.Resources{CPUMillis: 5500, MemoryMB: 8192}},   // fits
	}
	if got := Fragmentation(nodes, typical); got != 3500.0/10000 {
		t.Errorf("Fragmentation = %v, want 0.35", got)
	}
	if got := Fragmentation(nodes[3:4], typical); got != 0 {
		t.Errorf("Fragmentation with nothing free = %v, want 0", got)
	}
}

func TestImportDirection(t *testing.T) {
	deptest.Forbid(t, deptest.Pure...)
}

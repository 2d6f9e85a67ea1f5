package replay

import (
	"errors"
	"strings"
	"testing"
)

// FuzzReadNodes feeds ReadNodes arbitrary text: it must not panic, must
// fail only with ErrBadTrace, and what it accepts must be valid nodes.
func FuzzReadNodes(f *testing.F) {
	f.Add(tinyNodes)
	f.Add("sn,cpu_milli,memory_mib\n")
	f.Add("memory_mib,sn,cpu_milli\n1,a,2\n")
	f.Add("sn,cpu_milli,memory_mib\n\"a,b\",1,2\n")
	f.Add("sn,cpu_milli,memory_mib\na,99999999999999999999,1\n")
	f.Fuzz(func(t *testing.T, text string) {
		nodes, err := ReadNodes(strings.NewReader(text))
		if err != nil {
			if !errors.Is(err, ErrBadTrace) {
				t.Fatalf("error without ErrBadTrace: %v", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, n := range nodes {
			if n.Name == "" || seen[n.Name] || n.Capacity.CPUMillis < 0 || n.Capacity.MemoryMB < 0 {
				t.Fatalf("accepted a bad node %+v", n)
			}
			seen[n.Name] = true
		}
	})
}

// FuzzReadTasks feeds ReadTasks arbitrary text: it must not panic, must
// fail only with ErrBadTrace, and what it accepts must be valid tasks in
// arrival order, which a replay then runs without panicking.
func FuzzReadTasks(f *testing.F) {
	f.Add(tinyTasks)
	f.Add("name,cpu_milli,memory_mib,creation_time,deletion_time\n")
	f.Add("name,cpu_milli,memory_mib,creation_time,deletion_time\nt,1,1,5,\nu,2,2,3,3\n")
	f.Add("name,cpu_milli,memory_mib,creation_time,deletion_time\nt,1,1,5,4\n")
	f.Fuzz(func(t *testing.T, text string) {
		tasks, err := ReadTasks(strings.NewReader(text))
		if err != nil {
			if !errors.Is(err, ErrBadTrace) {
				t.Fatalf("error without ErrBadTrace: %v", err)
			}
			return
		}
		for i, task := range tasks {
			if task.Request.CPUMillis < 0 || task.Request.MemoryMB < 0 || task.Arrival < 0 || task.Departure < task.Arrival {
				t.Fatalf("accepted a bad task %+v", task)
			}
			if i > 0 && task.Arrival < tasks[i-1].Arrival {
				t.Fatalf("tasks out of arrival order: %+v before %+v", tasks[i-1], task)
			}
		}
		tr := Trace{Nodes: []Node{{Name: "a", Capacity: tinyCapacity}, {Name: "b", Capacity: tinyCapacity}}, Tasks: tasks}
		for _, mode := range []Mode{InTimeOrder, Fill} {
			res := Replay(tr, BestFit{}, Options{Mode: mode, Fragmentation: true})
			if res.Placed > res.Decisions || res.Fragmentation < 0 || res.Fragmentation > 1 {
				t.Fatalf("%v: %+v", mode, res)
			}
		}
	})
}

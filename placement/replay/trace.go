package replay

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/batonhq/baton/placement"
)

// ErrBadTrace is returned (wrapped, with the line and column) for trace
// files that cannot be read as a trace.
var ErrBadTrace = errors.New("bad trace")

// Node is one node of a trace.
type Node struct {
	Name     string
	Capacity placement.Resources
}

// Task is one task of a trace. Times are in seconds from the trace's start.
type Task struct {
	Name      string
	Request   placement.Resources
	Arrival   int64
	Departure int64 // never before Arrival; NoDeparture if the task never leaves
}

// NoDeparture is the departure of a task with none in the trace.
const NoDeparture = int64(1<<63 - 1)

// Trace is the nodes and tasks of a trace, tasks in arrival order.
type Trace struct {
	Nodes []Node
	Tasks []Task
}

// ReadNodes reads nodes in the openb format: a header naming at least the
// columns sn, cpu_milli and memory_mib (others are ignored), then one node a
// line. Names must be unique and amounts non-negative.
func ReadNodes(r io.Reader) ([]Node, error) {
	var nodes []Node
	seen := map[string]bool{}
	err := readCSV(r, []string{"sn", "cpu_milli", "memory_mib"}, func(row *row) error {
		n := Node{Name: row.text("sn")}
		n.Capacity.CPUMillis = row.amount("cpu_milli")
		n.Capacity.MemoryMB = row.amount("memory_mib")
		if row.err == nil && n.Name == "" {
			row.fail("sn", "empty node name")
		}
		if row.err == nil && seen[n.Name] {
			row.fail("sn", "node "+strconv.Quote(n.Name)+" appears twice")
		}
		seen[n.Name] = true
		nodes = append(nodes, n)
		return row.err
	})
	return nodes, err
}

// ReadTasks reads tasks in the openb format: a header naming at least the
// columns name, cpu_milli, memory_mib, creation_time and deletion_time
// (others are ignored), then one task a line. Amounts and times are
// non-negative integers; an empty deletion_time means the task never
// leaves; a deletion_time before creation_time is an error. The tasks are
// returned in arrival order (stable: ties keep the file's order).
func ReadTasks(r io.Reader) ([]Task, error) {
	var tasks []Task
	err := readCSV(r, []string{"name", "cpu_milli", "memory_mib", "creation_time", "deletion_time"}, func(row *row) error {
		t := Task{Name: row.text("name"), Departure: NoDeparture}
		t.Request.CPUMillis = row.amount("cpu_milli")
		t.Request.MemoryMB = row.amount("memory_mib")
		t.Arrival = row.amount("creation_time")
		if row.text("deletion_time") != "" {
			t.Departure = row.amount("deletion_time")
		}
		if row.err == nil && t.Departure < t.Arrival {
			row.fail("deletion_time", "departure before arrival ("+strconv.FormatInt(t.Arrival, 10)+")")
		}
		tasks = append(tasks, t)
		return row.err
	})
	sortByArrival(tasks)
	return tasks, err
}

// readCSV reads a header that must name every column in need, then calls
// each for every record.
func readCSV(r io.Reader, need []string, each func(*row) error) error {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // checked below, with a better message
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return fmt.Errorf("%w: empty file: want a header line naming %v", ErrBadTrace, need)
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadTrace, err)
	}
	cols := map[string]int{}
	for i, h := range header {
		cols[h] = i
	}
	for _, c := range need {
		if _, ok := cols[c]; !ok {
			return fmt.Errorf("%w: the header has no column %q (it has %q)", ErrBadTrace, c, header)
		}
	}
	width := len(header)
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrBadTrace, err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != width {
			return fmt.Errorf("%w: line %d has %d fields, the header %d", ErrBadTrace, line, len(rec), width)
		}
		if err := each(&row{rec: rec, cols: cols, line: line}); err != nil {
			return err
		}
	}
}

// row reads the fields of one record by column name; the first problem
// sticks in err.
type row struct {
	rec  []string
	cols map[string]int
	line int
	err  error
}

func (r *row) text(col string) string { return r.rec[r.cols[col]] }

// amount is a non-negative integer field.
func (r *row) amount(col string) int64 {
	if r.err != nil {
		return 0
	}
	v, err := strconv.ParseInt(r.text(col), 10, 64)
	if err != nil || v < 0 {
		r.fail(col, "want a non-negative integer, got "+strconv.Quote(r.text(col)))
		return 0
	}
	return v
}

func (r *row) fail(col, msg string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: line %d, column %s: %s", ErrBadTrace, r.line, col, msg)
	}
}

package scheduler

import (
	"fmt"
	"testing"

	"github.com/batonhq/baton/scheduler/store"
	"github.com/batonhq/baton/wire"
)

func TestReconcile(t *testing.T) {
	rec := func(id, node, state, desired string) store.Workload {
		return store.Workload{ID: id, Name: id, Node: node, State: state, Desired: desired, Command: []string{"x"}}
	}
	running := func(id string, pid int) wire.WorkloadStatus {
		return wire.WorkloadStatus{ID: id, State: wire.StateRunning, HostPID: pid}
	}
	exit3 := 3
	tests := []struct {
		name        string
		ready       bool
		reported    []wire.WorkloadStatus
		records     []store.Workload
		wantUpdates string
		wantActions string
	}{
		{
			name: "in sync: nothing to do", ready: true,
			reported: []wire.WorkloadStatus{running("a", 10)},
			records:  []store.Workload{{ID: "a", Node: "n1", State: wire.StateRunning, HostPID: 10, Desired: store.DesiredRunning}},
		},
		{
			name: "starting becomes running with pid", ready: true,
			reported:    []wire.WorkloadStatus{running("a", 10)},
			records:     []store.Workload{rec("a", "n1", wire.StateStarting, store.DesiredRunning)},
			wantUpdates: "a running pid=10 exit=-",
		},
		{
			name: "exit code is copied", ready: true,
			reported:    []wire.WorkloadStatus{{ID: "a", State: wire.StateFailed, ExitCode: &exit3}},
			records:     []store.Workload{rec("a", "n1", wire.StateRunning, store.DesiredRunning)},
			wantUpdates: "a failed pid=0 exit=3",
		},
		{
			name: "unknown workload on the node is stopped", ready: true,
			reported:    []wire.WorkloadStatus{running("ghost", 10)},
			wantActions: "stop n1 ghost",
		},
		{
			name: "workload placed elsewhere is stopped here", ready: true,
			reported:    []wire.WorkloadStatus{running("a", 10)},
			records:     []store.Workload{rec("a", "n2", wire.StateRunning, store.DesiredRunning)},
			wantActions: "stop n1 a",
		},
		{
			name: "deleted and still reported is stopped", ready: true,
			reported:    []wire.WorkloadStatus{running("a", 10)},
			records:     []store.Workload{rec("a", "n1", wire.StateRunning, store.DesiredDeleted)},
			wantActions: "stop n1 a",
		},
		{
			name: "deleted and gone is purged", ready: true,
			records:     []store.Workload{rec("a", "n1", wire.StateRunning, store.DesiredDeleted)},
			wantActions: "purge n1 a",
		},
		{
			name: "missing wanted workload is started", ready: true,
			records:     []store.Workload{rec("b", "n1", wire.StateRunning, store.DesiredRunning), rec("a", "n1", wire.StateStarting, store.DesiredRunning)},
			wantActions: "start n1 a; start n1 b",
		},
		{
			name: "not started on a node that is not ready", ready: false,
			records: []store.Workload{rec("a", "n1", wire.StateStarting, store.DesiredRunning)},
		},
		{
			name: "an exited workload is not restarted", ready: true,
			records: []store.Workload{rec("a", "n1", wire.StateFailed, store.DesiredRunning)},
		},
		{
			name: "other nodes' workloads are left alone", ready: true,
			records: []store.Workload{rec("a", "n2", wire.StateStarting, store.DesiredRunning)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			records := map[string]store.Workload{}
			for _, r := range tc.records {
				records[r.ID] = r
			}
			before := fmt.Sprint(records)
			updates, actions := reconcile("n1", tc.ready, tc.reported, records)
			if got := renderUpdates(updates); got != tc.wantUpdates {
				t.Errorf("updates = %q, want %q", got, tc.wantUpdates)
			}
			if got := renderActions(actions); got != tc.wantActions {
				t.Errorf("actions = %q, want %q", got, tc.wantActions)
			}
			if fmt.Sprint(records) != before {
				t.Error("reconcile modified its input")
			}
		})
	}
}

func renderUpdates(us []store.Workload) string {
	s := ""
	for i, u := range us {
		if i > 0 {
			s += "; "
		}
		exit := "-"
		if u.ExitCode != nil {
			exit = fmt.Sprint(*u.ExitCode)
		}
		s += fmt.Sprintf("%s %s pid=%d exit=%s", u.ID, u.State, u.HostPID, exit)
	}
	return s
}

func renderActions(as []action) string {
	s := ""
	for i, a := range as {
		if i > 0 {
			s += "; "
		}
		s += fmt.Sprintf("%s %s %s", a.Kind, a.Node, a.ID)
	}
	return s
}

package scheduler

import (
	"slices"

	"github.com/batonhq/baton/scheduler/store"
	"github.com/batonhq/baton/wire"
)

// actionKind is what the server must do to bring a node to its desired state.
type actionKind string

const (
	actStart actionKind = "start" // start the workload on the node
	actStop  actionKind = "stop"  // stop the workload on the node and make it forget it
	actPurge actionKind = "purge" // the node no longer runs a deleted workload: forget the record
)

// action is one step decided by reconcile.
type action struct {
	Kind actionKind
	Node string
	ID   string
}

// reconcile compares what a node reported with the records the server holds
// and returns the updated records (observed state copied in) and the actions
// that close the gap. It is pure: records is not modified.
//
// Rules:
//   - a reported workload the server does not want on this node is stopped;
//   - a wanted workload's observed state, pid and exit code are copied in;
//   - a deleted workload the node no longer reports is purged;
//   - a wanted, not-yet-exited workload the node does not report is (re)started,
//     but only on a node that is ready for work;
//   - a workload that is migrating is left alone on every node: the
//     migration owns it until it ends (both nodes may report it meanwhile).
func reconcile(node string, nodeReady bool, reported []wire.WorkloadStatus, records map[string]store.Workload) (updates []store.Workload, actions []action) {
	seen := make(map[string]bool, len(reported))
	for _, r := range reported {
		seen[r.ID] = true
		rec, ok := records[r.ID]
		if ok && rec.Migration != "" {
			continue
		}
		if !ok || rec.Node != node || rec.Desired == store.DesiredDeleted {
			actions = append(actions, action{Kind: actStop, Node: node, ID: r.ID})
			continue
		}
		if next, changed := observe(rec, r); changed {
			updates = append(updates, next)
		}
	}
	ids := make([]string, 0, len(records))
	for id, rec := range records {
		if rec.Node == node && !seen[id] && rec.Migration == "" {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		rec := records[id]
		switch {
		case rec.Desired == store.DesiredDeleted:
			actions = append(actions, action{Kind: actPurge, Node: node, ID: id})
		case nodeReady && !exited(rec.State):
			actions = append(actions, action{Kind: actStart, Node: node, ID: id})
		}
	}
	return updates, actions
}

// observe copies an agent's view of a workload into its record.
func observe(rec store.Workload, r wire.WorkloadStatus) (store.Workload, bool) {
	next := rec
	next.State, next.HostPID, next.ExitCode, next.Error = r.State, r.HostPID, r.ExitCode, r.Error
	if r.State == "" {
		next.State = rec.State
	}
	changed := next.State != rec.State || next.HostPID != rec.HostPID || next.Error != rec.Error ||
		(next.ExitCode == nil) != (rec.ExitCode == nil) ||
		(next.ExitCode != nil && rec.ExitCode != nil && *next.ExitCode != *rec.ExitCode)
	return next, changed
}

func exited(state string) bool { return state == wire.StateStopped || state == wire.StateFailed }

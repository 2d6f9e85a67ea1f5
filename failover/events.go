package failover

import (
	"time"

	"github.com/batonhq/baton/failover/groups"
	"github.com/batonhq/baton/failover/membership"
	"github.com/batonhq/baton/failover/quorum"
)

// NodeEvent translates a membership transition into the groups engine's
// event, if it calls for one: running → node-up, suspect → node-suspect,
// exiting → node-leaving, down → node-down. Joining needs none: a joining
// node gets no groups until it runs.
func NodeEvent(t membership.Transition) (groups.Event, bool) {
	ev := groups.Event{Node: t.Node, At: t.At, Reason: t.Reason}
	switch t.To {
	case membership.Running:
		ev.Kind = groups.NodeUp
	case membership.Suspect:
		ev.Kind = groups.NodeSuspect
	case membership.Exiting:
		ev.Kind = groups.NodeLeaving
	case membership.Down:
		ev.Kind = groups.NodeDown
	default:
		return groups.Event{}, false
	}
	return ev, true
}

// Live says whether a node in membership state s counts its votes for this
// partition: it beats (joining, running) or has not been proven dead
// (suspect, whose probe may yet answer).
func Live(s membership.State) bool {
	return s == membership.Joining || s == membership.Running || s == membership.Suspect
}

// QuorumEvent returns the engine's event when quorum changed between prev
// and cur, at time at.
func QuorumEvent(prev, cur quorum.Status, at time.Time) (groups.Event, bool) {
	if prev.Quorate == cur.Quorate {
		return groups.Event{}, false
	}
	ev := groups.Event{Kind: groups.QuorumLost, At: at, Reason: cur.String()}
	if cur.Quorate {
		ev.Kind = groups.QuorumGained
	}
	return ev, true
}

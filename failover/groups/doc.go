// Package groups decides where resource groups run and how they recover:
// ordered starts and stops, restarts in place, failover, failback, failure
// counts, and fencing before recovery.
//
// It is pure, like etcd's raft: the Engine takes an Event (a node went up or
// down, a fence answered, quorum changed, a resource was reported started,
// stopped or failed, a user asked for something, time passed) and returns
// Actions as plain data (start or stop resource R of group G on node N,
// fence N with level k, self-fence N by a deadline, group G is now in state
// S), each with a Reason for the event log. Adapters carry the actions out
// and report the results as further events. No clock, goroutine or I/O lives
// here; every Event carries its time.
//
// A group's life on a node:
//
//	           place on first eligible node (quorate only)
//	stopped ───────────────────────────────────────────▶ starting ──all started──▶ running
//	blocked ◀── no quorum: stop in reverse ──┐        ▲ (one start at a time,        │
//	   ▲                                      │        │  each after the last report) │
//	   │                                  stopping ◀───┴──── move, failback, failure, ─┘
//	   │                                      │               node leaving, delete
//	   │                                      ▼
//	   └──────────────────────────── next node (or stopped/deleted)
//
//	running/starting/stopping ──node down──▶ recovering ──fenced, or self-fence──▶ next node
//	                                                      deadline passed
//
// Safety rules, each checked by the property test against a model of what
// may really run where:
//
//   - A group is started on a node only while the partition is quorate and
//     the node is up, and only when none of its resources may still run on
//     any other node.
//   - Fence before recovery: the resources on a node that went down (or
//     whose stop failed) count as running until a fence device confirms the
//     node off (Fenced) or, for a node cut off from the quorate partition,
//     until its self-fence deadline (DownAt + Config.SelfFenceWait) has
//     passed. A node taken down while it may be alive (a failed stop, a
//     user's fence) gets no deadline: it would not self-fence.
//   - Fencing levels are tried in order; when all fail, fencing starts again
//     after Config.FenceRetry. A partition without quorum neither fences nor
//     starts; it stops its groups (SelfFence gives each node the deadline).
//
// Failures: a failed start, a crash or a failed monitor counts one failure
// on the node. The failed resource and those after it are stopped in reverse
// and started again in place up to Monitor.Restarts times; after that the
// group fails over (stops in reverse, starts on the next eligible node). A
// node where the group's failures reach the threshold is not eligible until
// the failures are reset (Pacemaker's migration-threshold).
//
// Failback: with FailbackManual a group stays where it runs when a more
// preferred node returns; with FailbackAuto it moves back. A user's move
// overrides the preference until cleared, or until the group is forced off
// that node.
//
// Defaults (DefaultConfig): the 2 s death-to-recovery target is met through
// fencing — membership.FailoverConfig confirms a death in about 1 s, a fence
// device answers in a few hundred milliseconds, and the first start follows at
// once. SelfFenceWait (5 s) is the fallback when every fence level fails: a
// cut-off node notices it lost quorum in about 1 s (the same heartbeat and
// probe rules), has StopWithin (2 s) to stop everything, and 2 s more cover
// timer slack and clock-rate differences; since the majority counts from the
// moment it declared the node down, which is already later than the node's
// last contact, the bound holds. FenceRetry (10 s) retries a failed fencing
// round without hammering a broken BMC. FailureThreshold (3) moves a group off
// a node after three failures there, as commonly configured with Pacemaker
// (whose own default, INFINITY, never does).
//
// A leader persists Engine.Snapshot (plain data, JSON) and its successor
// continues with Restore.
package groups

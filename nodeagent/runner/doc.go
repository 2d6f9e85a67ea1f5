// Package runner owns the workloads of kind process on one node: it starts
// them, watches them exit, stops them with their whole process tree, and
// remembers them in a state file so that a restarted agent re-adopts the
// workloads that kept running.
//
// Each workload runs detached from the agent, so that either can die without
// taking the other along:
//
//   - in its own PID namespace, as its PID 1, and as the leader of a session
//     that starts inside that namespace (what CRIU needs to checkpoint it);
//   - in its own session and process group, with no parent-death signal;
//   - with stdin on /dev/null and stdout and stderr appended to
//     <DataDir>/workloads/<id>/output.log;
//   - in a cgroup <CgroupParent>/<id> of the memory, cpu and pids v1
//     controllers carrying its limits (see package cgroupv1).
//
// The child is placed in its cgroup before it runs the user's command: it
// starts as a re-execution of the agent's own binary (/proc/self/exe) whose
// init function, seeing the marker argv[0] and environment, waits on a pipe
// until the agent has moved it into the cgroup and then execs the command.
// An exec failure travels back on a close-on-exec pipe, so Start reports
// "exec format error" and the like synchronously instead of leaving a failed
// workload behind. Any binary that imports this package gets that init hook.
//
// Workload identity is (host PID, start time in clock ticks from
// /proc/PID/stat); a reused PID is never adopted. Signals go through pidfds.
// Exit is detected by polling a pidfd; a workload that is the agent's child
// is reaped with waitid(P_PIDFD) and reports its exit code, one adopted from
// a previous agent process is not our child and exits with an unknown code.
//
// The state file <DataDir>/state.json is replaced atomically (temporary
// file, fsync, rename, fsync of the directory) before Start and Stop return.
package runner

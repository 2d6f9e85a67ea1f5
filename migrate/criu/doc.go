// Package criu is the adapter that carries out the migrate state machine's
// CRIU actions on one node, through go-criu's swrk RPC (never the criu CLI):
// feature detection, dump (pages streamed to a page server on the target),
// page server, restore into the target node's cgroups, and the freezer
// cgroup that makes a dumped source resumable.
//
// # How a workload's files travel
//
// A workload started by nodeagent/runner has stdout and stderr on
// <DataDir>/workloads/<id>/output.log of the SOURCE agent, and a working
// directory. CRIU records open regular files by path (and size) and reopens
// them by path at restore.
//
//   - The log: the target agent has its own data dir, so the same path is
//     the wrong place (on one machine it is even the source agent's file).
//     Restore hands the target's own log file to the restored process with
//     CRIU's inherit-fd (RestoreOpts.Log, keyed by the path the source saw,
//     RestoreOpts.LogKey): fds 1 and 2 of the restored process are the
//     target's <DataDir>/workloads/<id>/output.log, opened O_APPEND, so the
//     process goes on appending there. The agent copies the source log's
//     content to the target before restore if it wants one continuous log.
//   - The working directory and any other file the process holds open must
//     exist at the same path on the target (the agent syncs the workdir
//     before restore); CRIU checks their sizes and fails the restore
//     otherwise, which the state machine turns into a rollback.
//
// # Cgroups
//
// The runner puts a workload in memory, cpu and pids groups
// baton/<node>/<id>. Restore remaps those (RestoreOpts.Cgroups, see
// CgroupRoots) so the restored workload lands in baton/<target>/<id>; the
// target agent creates those groups with the workload's limits beforehand,
// and CRIU's soft cgroup mode leaves the limits of existing groups alone.
//
// # Rollback
//
// A plain dump kills the source, and with pages streamed to the target's page
// server there is no local copy of the pages to restore from. So the source
// is frozen in a freezer cgroup (Freezer) before the dump, and dumped with
// LeaveRunning and FreezeCgroup: CRIU leaves a cgroup it found frozen frozen.
// Abort thaws it (the workload goes on as if nothing happened), commit kills
// it. The freezer group is mapped to the target's name at restore like the
// others, and Restore thaws it.
package criu

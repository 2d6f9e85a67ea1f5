// Package cgroupv1 owns the node agent's use of the cgroup v1 filesystem: it
// creates one group per workload in the memory, cpu and pids hierarchies,
// writes its limits, moves processes into it, kills what is left in it and
// removes it.
//
// Baton's machines run the v1 (hybrid) layout, each controller mounted at
// /sys/fs/cgroup/<controller>. The pids hierarchy is the reference for "which
// processes belong to this group": it accounts every task and has no other
// side effects.
//
// The package does no logging and keeps no state beyond the paths it was
// given; every method acts on the filesystem directly.
package cgroupv1

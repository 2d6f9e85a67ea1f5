// Package rebalance decides which running workloads to move, by live
// migration, from nodes that run hot to nodes with headroom, and where the
// workloads of a drained node go. It owns those decisions and their
// explanations, nothing else.
//
// The package is pure, like placement: Decide takes the cluster as plain data
// (the measured headroom of every node, the workloads with their resident
// memory, the migrations in flight, the time) and returns the moves it would
// make now and why (Decide), without doing any of them. Tracker follows each node's
// heat from report to report. Neither reads a clock, logs, or does I/O; the
// scheduler feeds them and carries the moves out (scheduler/rebalance.go).
//
//	heartbeat ─▶ Tracker.Observe ─▶ Heat (hot after HotReports readings in a row,
//	                                      cool again after CoolReports: hysteresis)
//	tick ─▶ Decide(Input{nodes + heat, workloads, pending migrations, now})
//	          1. drain: every workload of a drained node gets a target
//	          2. rebalance: greedy, best benefit/cost first, within budgets
//	        ─▶ Plan{moves with reasons, skips with reasons, imbalance before/after}
//
// The imbalance of the cluster is the standard deviation of node load over
// the schedulable nodes, where a node's load is its most used watched
// resource (memory, CPU) as a fraction of its capacity, from the measured
// headroom. A move's benefit is how much it lowers the imbalance; its cost is
// the predicted frozen time (resident memory over the link speed plus CRIU's
// fixed overhead) weighted by the workload's priority. A move is only made
// from a hot node, only if the target stays cool after it (so it can never
// become a source and send the workload back), only if it lowers the
// imbalance by Policy.MinImprovement, within the per-node and per-cluster
// migration budgets and outside the workload's cooldown.
package rebalance

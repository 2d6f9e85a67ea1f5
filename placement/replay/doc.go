// Package replay replays a cluster trace (nodes, and tasks with CPU and
// memory requests, arrival and departure times) through a placer and
// measures how well it packs: how many tasks it placed and how fragmented
// the free capacity is. It owns the trace format and the replay loop, and
// the two baseline placers the benchmarks compare Baton's placement with.
//
//	nodes.csv, pods.csv ──ReadNodes/ReadTasks──▶ Trace ──Replay(placer)──▶ Result
//	                                                        │     ▲
//	                                        Place(task) ────┘     └── Changed(node) after each placement/departure
//
// Placers: Baton (placement.Cluster with bin-pack or spread), RandomFit
// (any node that fits, uniformly) and BestFit (the node left with the least
// free CPU). Two scenarios (Mode):
//
//   - InTimeOrder: arrivals and departures in time order, as they happened.
//   - Fill: arrivals only, in trace order, the trace repeated, until the
//     tasks submitted ask for the cluster's whole CPU: the trace scaled up
//     until placement choices matter, as the FGD paper does ("Beware of
//     Fragmentation", USENIX ATC 2023, which published the openb trace).
//
// Fragmentation is FGD's notion reduced to CPU and memory: the share of the
// cluster's free CPU that sits on nodes too small (in free CPU or free
// memory) for the trace's typical task — the median CPU request and the
// median memory request. 0% means every free core could take such a task.
//
// The package is pure: it reads io.Readers, takes no time and does no
// other I/O; the benchmark opens the files and keeps the time.
package replay

// Package placement decides which node a workload goes to. It owns that
// decision and its explanation, nothing else.
//
// The package is pure: Place takes the scheduler's view of the nodes and a
// Request and returns a Decision as plain data. It does no I/O, reads no
// clock, logs nothing, starts no goroutines and keeps no state between calls,
// so the same input always gives the same Decision, on every platform. The
// scheduler gathers the nodes and carries the decision out. A test
// (deps_test.go) fails if the package comes to depend on NATS, go-plugin,
// net/http, os, os/exec, log, log/slog or time.
//
// Place is a pipeline. Filters run in a fixed order and each eliminates
// nodes:
//
//	node-state → allowed-nodes → denied-nodes → labels → anti-affinity → cpu → memory
//
// Every node is counted by the first filter that rejects it, and every filter
// that eliminated a node leaves a Rejection saying how many, which, and why.
// The nodes that pass every filter are scored by the Strategy (BinPack or
// Spread), on a 0..100 scale, and ranked: higher score first, then node name.
//
// When nothing fits, Place returns the Decision with its Rejections and an
// error wrapping ErrNoFit that reads like
//
//	workload "web": no node fits: 3 nodes lack memory (need 2 GiB, best has 1.2 GiB free), 1 node is down
//
// Decision.Explain gives the same reasons text, for dry runs.
//
// Three ways in, one decision:
//
//   - Place(nodes, req): the hot path when the nodes come fresh for each
//     decision. One pass over the nodes; it keeps the best MaxCandidates
//     candidates in a small heap and MaxExampleNodes names per rejection,
//     so nothing is sorted and nothing allocated per node. Rejection.Count
//     and Decision.Feasible still count every node.
//   - Plan(nodes, req): the dry run (POST /v1/plan): the same choice with
//     every candidate ranked and every rejected node named.
//   - NewCluster(nodes), then Cluster.Place, Cluster.Plan and
//     Cluster.Update: for a caller that places often on a large cluster.
//     The Cluster indexes the nodes once (the ready ones, and the nodes
//     per label and per workload name, as bitsets) and packs what the
//     resource filters and the scorer read, so the constraint filters cost
//     a few word operations per 64 nodes and a decision reads 48 bytes per
//     node instead of the whole Node with its maps. It decides exactly as
//     Place and Plan do; the property and fuzz tests hold all of them to
//     the naive reference placer.
package placement

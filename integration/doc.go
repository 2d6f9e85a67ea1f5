// Package integration holds Baton's end-to-end tests: a real embedded NATS
// server, real `baton server` and `baton agent` processes, real workloads in
// PID namespaces and cgroups. newNetCluster puts every node in its own
// network namespace on a test network of its own (netns_test.go), so that a
// test can partition a node by pulling its link or dropping its traffic.
// They need root; with BATON_REQUIRE_PRIVILEGED=1 (as in CI) a missing
// capability fails the suite instead of skipping it.
package integration

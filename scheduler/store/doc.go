// Package store keeps the scheduler's desired state — the workloads users
// asked for, where they were placed and what was last seen of them — so that a
// restarted server loses nothing (NodeStore: what operators asked of nodes,
// such as drains). KV stores it in a JetStream key-value bucket
// (replicated when NATS is a cluster); Memory is its in-memory twin for tests.
package store

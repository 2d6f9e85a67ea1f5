// Package migrate will own live migration: moving a running workload to
// another node with CRIU so that it continues where it was, memory and all.
//
// The protocol (prepare → pre-dump rounds → freeze and dump → transfer →
// restore → commit, or abort and roll back) will be a pure state machine
// here, with every transition an event carrying its timings; the CRIU adapter
// (go-criu's swrk RPC) and the page-server transfer will carry its actions
// out. Workloads already run as PID 1 of their own PID namespace (see
// nodeagent/runner) so that a restore on another node cannot collide on PIDs.
package migrate

// Package scheduler is the heart of `baton server`: it consumes the agents'
// heartbeats, keeps the node table (through failover/membership), places
// workloads (through placement), tells agents to start and stop them over NATS,
// and keeps the desired state in a Store so that a restarted server loses
// nothing.
//
// The server reconciles level-triggered: every heartbeat lists what the node
// runs, and the server compares it with what it wants there (see reconcile.go,
// a pure function). A missed command is therefore repaired at the next
// heartbeat, and agents' start/stop commands are idempotent by workload id, so
// a repeated command never runs a second copy.
//
//	agents ──heartbeat──▶ Server ──start/stop (request/reply)──▶ agents
//	                        │ ▲
//	              placement │ │ Store (JetStream KV)
//	              membership▼ │
//	                      httpapi (REST)
package scheduler

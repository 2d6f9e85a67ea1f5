// Package lease elects the one `baton server` that acts, when several run
// for high availability. The lease is a key in a JetStream key-value bucket
// (replicated on a NATS cluster, so no home-made consensus): a server becomes
// leader by creating the key, keeps it by updating it every TTL/4, and it
// expires TTL after the last update.
//
// Fencing tokens: the leader's epoch is the JetStream revision at which it
// created the key. Revisions only grow, so every new leader has a higher epoch
// than all before it; commands to agents carry it and agents refuse commands
// with an epoch lower than one they have seen. A leader that cannot renew
// stops acting TTL/4 before its key can expire, so two servers never act at
// once even before the agents' check.
//
//	follower ──Create ok──▶ leader ──Update ok every TTL/4──▶ leader
//	   ▲                      │ no successful update for 3/4 TTL,
//	   └──────────────────────┘ or someone else's key: step down at once
package lease

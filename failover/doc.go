// Package failover will own Baton's HA decisions: quorum with votes and a
// witness, resource groups, and when to fence a failed node and restart its
// groups elsewhere. Like placement it is pure: it takes cluster state, events
// and the current time, and returns actions as plain data for the scheduler to
// carry out.
//
// Today it holds membership (subpackage membership): the node state machine
// joining → running → suspect → down, and exiting, driven by heartbeats and
// time. Quorum, groups and fencing build on it.
package failover

// Package failover owns Baton's HA decisions. Like placement it is pure: its
// subpackages take cluster state, events and the current time, and return
// decisions or actions as plain data for the scheduler, agents and fencing
// plugins to carry out. None of them does I/O (each has an import-direction
// test).
//
//   - membership: the node state machine joining → running → suspect → down,
//     and exiting, driven by heartbeats, direct probes and time. A node is
//     declared down only on evidence: silence confirmed by a failed probe.
//   - quorum: votes per node, expected votes, a witness's proxy vote and
//     wait-for-all, as in OpenVMS/Windows clusters and corosync votequorum.
//   - groups: resource groups (ordered resources, allowed nodes, failback,
//     monitors, failure counts) and the fence-before-recovery engine.
//
// How they fit, in the server that leads:
//
//	heartbeats, probe results ──▶ membership ──transitions──┬──▶ quorum (live votes)
//	                                   │ probes to send      │         │ quorate?
//	                                   ▼                     ▼         ▼
//	                                adapter          groups.Engine ◀── fence results,
//	                                                    │                resource reports,
//	                                                    ▼                user requests, ticks
//	                            start/stop (agents), fence (plugins), self-fence, group states
package failover

// Package nodeagent owns the node agent daemon: the process on every node
// that connects to NATS, reports the node with a heartbeat every interval
// (measured capacity and headroom, labels, the status of its workloads),
// serves the server's start and stop commands for its workloads, and
// announces an orderly shutdown with a leave message. For failover it also
// sends liveness beats, answers the server's direct probes, runs the health
// monitors of group resources, and self-fences them (kills them, starts
// none) when it no longer hears a quorate leader. Subjects and messages
// are those of package wire.
//
// The agent wires adapters together and holds no policy: package runner runs
// the workloads (and re-adopts them after an agent restart), package metrics
// measures the machine, package migration carries out the live migration
// operations and reports the node's CRIU features in every heartbeat. See README.md for a picture.
package nodeagent

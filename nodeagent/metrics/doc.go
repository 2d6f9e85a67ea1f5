// Package metrics owns the node agent's measurement of its machine: total
// capacity and current headroom (idle CPU, available memory, load, free disk
// of the data dir), read through gopsutil for the heartbeats.
package metrics

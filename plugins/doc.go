// Package plugins will hold Baton's plugin SDK, built on hashicorp/go-plugin
// over gRPC: first the fencing drivers (power a failed node off before its
// resource groups restart elsewhere) — a small interface with off, on,
// reboot, status, list and metadata, a conformance suite any driver can run,
// and drivers for ClusterLabs fence agents, IPMI and plain processes.
package plugins

// Package plugins holds Baton's plugin SDKs, built on hashicorp/go-plugin
// over gRPC. The first is plugins/fence: fencing drivers that power a failed
// node off before its resource groups restart elsewhere — a small interface
// (off, on, reboot, status, list, metadata), a conformance suite any driver
// runs against itself (fence/fencetest), and drivers for ClusterLabs fence
// agents, IPMI and plain processes. See fence/README.md.
package plugins

package nodeagent

import "github.com/batonhq/baton/wire"

// sliceMemory reports a node that is a slice of sliceMB of the machine's
// memory: its capacity is the slice, its free memory the slice minus what its
// own workloads hold resident (their memory cgroups' RSS), and never more than
// the machine has available. So the node runs hot when its workloads fill
// its slice, whatever other nodes on the same machine do, and measured
// headroom stays measured: the workloads' RSS and the machine's available
// memory both come from the kernel.
func sliceMemory(c wire.Capacity, h wire.Headroom, sliceMB int64, workloads []wire.WorkloadStatus) (wire.Capacity, wire.Headroom) {
	var rss int64
	for _, w := range workloads {
		rss += w.RSSBytes
	}
	c.MemoryMB = sliceMB
	h.MemoryMB = max(min(h.MemoryMB, sliceMB-(rss+(1<<20)-1)>>20), 0)
	return c, h
}

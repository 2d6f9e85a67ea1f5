// Package fenceagent is the fence driver that runs ClusterLabs fence agents
// (fence_ipmilan, fence_dummy and the other fence_* programs of Debian's
// fence-agents package) with their stdin protocol: one key=value per line,
// action=status|off|on|reboot|list|metadata, plug=... for agents that drive
// several targets, every other parameter passed through.
//
// It owns the agent protocol (exit codes, the `list` and XML `metadata`
// output, parsed defensively: see parse.go and its fuzz targets) and the
// mapping from Baton's targets (node names) to agent plugs. The plugin
// binary is cmd/baton-fence-agent.
package fenceagent

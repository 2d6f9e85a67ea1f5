// Package process is the fence driver for nodes that are groups of local
// processes (`baton dev`, tests): it "powers off" a node by SIGKILLing its
// agent and workloads, and reports the node on while any of them is left.
//
// A node's processes are found by up to three selectors, each a template in
// which {node} stands for the node's name: a pid file (the agent's), a
// cgroup directory (its workloads, e.g. /sys/fs/cgroup/pids/baton/{node},
// searched recursively) and a regular expression over command lines. It
// never signals PID 1, itself or its parent, ignores zombies, and ignores a
// pid file whose process started after the file was written (a reused pid).
// It cannot power a node on: On and Reboot answer fence.ErrUnsupported.
//
// The delay parameter (whole seconds, default 0) makes Off wait before it
// kills anything, like the standard delay option of the ClusterLabs fence
// agents ("wait X seconds before fencing is started"): it stands in for a
// real device that takes seconds to power a node off (a BMC), or staggers
// the fences of a pair of nodes. Status and List are not delayed; the delay
// counts against the caller's deadline (baton server gives a fence attempt
// 60 s), and a call that ends during it kills nothing.
package process

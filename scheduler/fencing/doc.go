// Package fencing is the server's side of fencing: it reads the fence
// configuration file (`baton server --fence-config FILE`) and fences nodes
// through the plugin drivers of plugins/fence.
//
// It owns:
//
//   - config.go: the file's format (devices with their driver, parameters
//     and per-node targets; fence levels per node and by default), Parse and
//     Load with errors that say what is wrong and what to do, and the levels
//     for failover/groups (Config.ApplyLevels);
//   - drivers.go: finding a device's driver binary (baton-fence-NAME next to
//     the running executable, then in $PATH, or an absolute path);
//   - fencer.go: Fencer, the scheduler.Fencer the failover adapter calls: it
//     starts each device's plugin on first use and keeps it running,
//     configures it, powers the node off and checks that its status is off.
//
// The decisions (which device when, retries, what a failure means for the
// node's groups) are failover/groups'; this package only carries out one
// fence attempt at a time, as many at once as the adapter asks. See README.md.
package fencing

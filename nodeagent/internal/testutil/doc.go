// Package testutil holds the helpers that the node agent's tests share:
// the privilege gate, unique node names, and the leak checks for workload
// processes, cgroups and goroutines. Only tests import it.
package testutil

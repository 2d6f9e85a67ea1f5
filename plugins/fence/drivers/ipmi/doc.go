// Package ipmi is the fence driver for a node's BMC over IPMI v2 (RMCP+):
// it runs ipmitool -I lanplus "chassis power status|on|off|cycle" and
// confirms every change by polling the power status. One BMC fences one
// node, named with host_list. Parsing ipmitool's output is in parse.go
// (fuzzed); the plugin binary is cmd/baton-fence-ipmi; package ipmisim runs
// OpenIPMI's simulator for tests.
package ipmi

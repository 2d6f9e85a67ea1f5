//go:build !linux

package fence

import "os/exec"

// setPdeathsig does nothing outside Linux: only Close stops the plugin.
func setPdeathsig(*exec.Cmd) {}

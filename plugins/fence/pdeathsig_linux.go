package fence

import (
	"os/exec"
	"syscall"
)

// setPdeathsig makes the kernel SIGKILL the plugin when the host thread that
// started it exits, so a crashed host leaves no plugin behind.
func setPdeathsig(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}

package runner

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// The shim is the first stage of every workload: the agent re-executes its
// own binary as
//
//	argv = [shimArg0, resolved-path, user-argv...], env += shimEnv=1
//
// with fd 3 the read end of the "go" pipe and fd 4 the write end of the status
// pipe. The shim waits for one byte on fd 3 (sent once the agent has moved it
// into the workload's cgroups), then execs the user's command. If the exec
// fails, it writes the error to fd 4 (close-on-exec, so a successful exec
// closes it with nothing written) and exits 127. EOF on fd 3 without a byte
// means the agent gave up on this start: the shim exits 126 without running
// anything.
const (
	shimArg0     = "baton-runner-init"
	shimEnv      = "_BATON_RUNNER_INIT"
	shimEnvValue = "1"
	shimGoFD     = 3
	shimStatusFD = 4
)

func init() {
	if len(os.Args) < 3 || os.Args[0] != shimArg0 || os.Getenv(shimEnv) != shimEnvValue {
		return
	}
	os.Exit(runShim(os.Args[1], os.Args[2:]))
}

func runShim(path string, argv []string) int {
	unix.CloseOnExec(shimStatusFD)
	var b [1]byte
	for {
		n, err := unix.Read(shimGoFD, b[:])
		if err == unix.EINTR {
			continue
		}
		if n != 1 {
			return 126
		}
		break
	}
	unix.Close(shimGoFD)
	os.Unsetenv(shimEnv)
	// syscall.Exec (not unix.Exec) restores the RLIMIT_NOFILE soft limit
	// that the Go runtime raised at start-up.
	err := syscall.Exec(path, argv, os.Environ())
	msg := "exec " + path + ": " + err.Error()
	unix.Write(shimStatusFD, []byte(msg))
	os.Stderr.WriteString("baton: " + msg + "\n")
	return 127
}

// Package run runs the outside programs fence drivers drive (fence agents,
// ipmitool): in their own process group, with capped output, killed as a
// group when the call's context ends.
package run

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"

	"github.com/batonhq/baton/plugins/fence"
)

// MaxOutput caps what is kept of a program's stdout and of its stderr.
const MaxOutput = 1 << 20

// Result is a finished program's output and exit code.
type Result struct {
	Stdout, Stderr []byte
	ExitCode       int
}

// Cmd is a program to run.
type Cmd struct {
	Path  string
	Args  []string
	Env   []string // nil: the driver's environment
	Stdin []byte
}

// Run runs c and waits for it. A non-zero exit is not an error: the caller
// interprets ExitCode. The error is non-nil when the program could not run
// or when ctx ended first; then the whole process group got SIGKILL and the
// error wraps ctx.Err() (and fence.ErrTimeout for a deadline).
func Run(ctx context.Context, c Cmd) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, ctxErr(c.Path, err)
	}
	cmd := exec.CommandContext(ctx, c.Path, c.Args...)
	cmd.Env = c.Env
	cmd.Stdin = bytes.NewReader(c.Stdin)
	stdout := &capped{max: MaxOutput}
	stderr := &capped{max: MaxOutput}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// Own process group, so the program's children (ipmitool under a fence
	// agent) die with it; SIGKILL if the driver process dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	// Grandchildren holding the output pipes must not keep Wait blocked.
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	res := Result{Stdout: stdout.buf.Bytes(), Stderr: stderr.buf.Bytes(), ExitCode: cmd.ProcessState.ExitCode()}
	if cerr := ctx.Err(); cerr != nil {
		return res, ctxErr(c.Path, cerr)
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return res, fmt.Errorf("run %s: %w: %v", c.Path, fence.ErrFailed, err)
	}
	if res.ExitCode < 0 { // killed by a signal we did not send
		return res, fmt.Errorf("run %s: %w: %v", c.Path, fence.ErrFailed, err)
	}
	return res, nil
}

func ctxErr(path string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("run %s: %w: %w", path, fence.ErrTimeout, err)
	}
	return fmt.Errorf("run %s: %w", path, err)
}

// capped keeps the first max bytes written and drops the rest.
type capped struct {
	buf bytes.Buffer
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.buf.Len(); room > 0 {
		if len(p) > room {
			c.buf.Write(p[:room])
		} else {
			c.buf.Write(p)
		}
	}
	return len(p), nil
}

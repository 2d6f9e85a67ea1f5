package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/batonhq/baton/nodeagent/runner"
	"github.com/batonhq/baton/wire"
)

// Health monitors of group resources: the agent runs each running group
// resource's Monitor.Command every IntervalMS; the runner counts the
// failures of the resource's current run in its state (they survive an
// agent restart); heartbeats report the count and the last failure
// (WorkloadStatus.MonitorFailures, MonitorError) and the group engine of the
// leading server decides what to do (restart in place, fail over).

// monitorTarget is what the monitors need of the runner.
type monitorTarget interface {
	// Command builds a command run as the workload would run it (its env,
	// its workdir).
	Command(ctx context.Context, spec wire.WorkloadSpec, argv []string) (*exec.Cmd, error)
	// MonitorFailed counts a failed check of the run that started at
	// startedAt; false if that run no longer runs.
	MonitorFailed(id string, startedAt time.Time, reason string) (failures int, counted bool)
}

// checkWaitDelay bounds how long a check that was killed (or whose leader
// exited) may hold its output pipe open through an escaped descendant.
const checkWaitDelay = time.Second

// maxCheckOutput is how much of a check's output is kept for its error.
const maxCheckOutput = 4 << 10

// runCheck runs one health check: build makes the command with the context
// it must obey. It returns nil if the command exits 0 within timeout, else an
// error saying why ("exit status 1: <last line of output>", "timed out after
// 200ms"). The command runs in a process group of its own, killed as a whole
// on timeout. If ctx ends first, it returns ctx's error.
func runCheck(ctx context.Context, timeout time.Duration, build func(context.Context) (*exec.Cmd, error)) error {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd, err := build(cctx)
	if err != nil {
		return fmt.Errorf("cannot run the check: %w", err)
	}
	out := &tailBuffer{max: maxCheckOutput}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = checkWaitDelay
	err = cmd.Run()
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(cctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("timed out after %v", timeout)
	case err == nil:
		return nil
	}
	if line := out.lastLine(); line != "" {
		return fmt.Errorf("%v: %s", err, line)
	}
	return err
}

// tailBuffer keeps the last max bytes written to it. exec.Cmd writes to it
// from one goroutine at a time (the same writer for stdout and stderr).
type tailBuffer struct {
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

// maxErrorLine caps the output line quoted in a monitor error.
const maxErrorLine = 200

func (t *tailBuffer) lastLine() string {
	s := strings.TrimSpace(string(t.b))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[i+1:])
	}
	if len(s) > maxErrorLine {
		s = s[:maxErrorLine] + "..."
	}
	return s
}

// runKey identifies one run of a workload: a start again is a new run, whose
// failures count from 0.
type runKey struct {
	pid     int
	started int64 // StartedAt in Unix nanoseconds
}

func keyOf(st wire.WorkloadStatus) runKey {
	return runKey{pid: st.HostPID, started: st.StartedAt.UnixNano()}
}

// monitorRun is the monitor of one run of a group resource.
type monitorRun struct {
	key  runKey
	halt context.CancelFunc // nil once the loop was stopped
}

// monitors runs the health checks of the group resources. sync starts and
// stops them to match the runner's workloads.
type monitors struct {
	ctx       context.Context // ends with close
	cancel    context.CancelFunc
	log       *slog.Logger
	clock     Clock
	target    monitorTarget
	onFailure func() // called after each counted failure; must not block

	mu   sync.Mutex
	runs map[string]*monitorRun // by workload id
	wg   sync.WaitGroup
}

func newMonitors(log *slog.Logger, clock Clock, target monitorTarget, onFailure func()) *monitors {
	ctx, cancel := context.WithCancel(context.Background())
	return &monitors{ctx: ctx, cancel: cancel, log: log, clock: clock, target: target, onFailure: onFailure, runs: map[string]*monitorRun{}}
}

// sync starts a monitor for every running group resource with a Monitor
// that has none for its current run and stops the others.
func (m *monitors) sync(resources []runner.Resource) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx.Err() != nil {
		return
	}
	seen := make(map[string]bool, len(resources))
	for _, res := range resources {
		id, key := res.Spec.ID, keyOf(res.Status)
		seen[id] = true
		run := m.runs[id]
		if run != nil && run.key != key {
			run.stop()
			delete(m.runs, id)
			run = nil
		}
		monitored := res.Spec.Monitor != nil && res.Status.State == wire.StateRunning
		switch {
		case run == nil && monitored:
			ctx, halt := context.WithCancel(m.ctx)
			m.runs[id] = &monitorRun{key: key, halt: halt}
			m.wg.Add(1)
			go m.loop(ctx, res.Spec, res.Status.StartedAt)
		case run != nil && !monitored:
			run.stop()
			delete(m.runs, id)
		}
	}
	for id, run := range m.runs {
		if !seen[id] {
			run.stop()
			delete(m.runs, id)
		}
	}
}

func (r *monitorRun) stop() {
	if r.halt != nil {
		r.halt()
		r.halt = nil
	}
}

// loop checks the run of spec's workload that started at startedAt every
// Monitor.IntervalMS until ctx ends or the run is over.
func (m *monitors) loop(ctx context.Context, spec wire.WorkloadSpec, startedAt time.Time) {
	defer m.wg.Done()
	mon := *spec.Monitor
	interval := time.Duration(mon.IntervalMS) * time.Millisecond
	timeout := time.Duration(mon.TimeoutMS) * time.Millisecond
	ticker := m.clock.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ticker.C():
		case <-ctx.Done():
			return
		}
		err := runCheck(ctx, timeout, func(cctx context.Context) (*exec.Cmd, error) {
			return m.target.Command(cctx, spec, mon.Command)
		})
		if err == nil || ctx.Err() != nil {
			continue
		}
		// A check that fails because the workload has just exited, or is
		// being stopped or killed, is no monitor failure: the exit is
		// reported as such.
		n, counted := m.target.MonitorFailed(spec.ID, startedAt, err.Error())
		if !counted {
			return
		}
		m.log.Warn("health check failed", "id", spec.ID, "failures", n, "err", err)
		m.onFailure()
	}
}

// close stops every monitor and waits for them.
func (m *monitors) close() {
	m.mu.Lock()
	m.cancel()
	m.mu.Unlock()
	m.wg.Wait()
}

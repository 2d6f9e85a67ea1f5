package runner

import (
	"context"
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"time"

	"github.com/batonhq/baton/wire"
)

// What the node agent needs for the resources of resource groups
// (workloads whose spec has a Group): listing them with their specs for
// their health monitors, running a monitor's command as the workload would
// see it, and killing them at once when the agent self-fences.

// Resource is a workload of a resource group with its spec and status.
type Resource struct {
	Spec   wire.WorkloadSpec
	Status wire.WorkloadStatus
}

// GroupResources returns the known workloads whose spec has a Group,
// running or exited, sorted by ID.
func (r *Runner) GroupResources() []Resource {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Resource
	for _, id := range slices.Sorted(maps.Keys(r.wls)) {
		if w := r.wls[id]; w.rec.Spec.Group != nil {
			st := w.rec.Status
			st.Group = w.rec.Spec.Group
			out = append(out, Resource{Spec: w.rec.Spec, Status: st})
		}
	}
	return out
}

// MonitorFailed counts a failed health check of workload id's run that
// started at startedAt (its StartedAt): it increments the run's
// MonitorFailures, sets MonitorError to reason and saves the state file, so
// that the count survives an agent restart and starts at 0 only with a new
// run. It counts nothing and returns false if that run no longer runs (a
// check that failed because the workload exited or is being stopped).
func (r *Runner) MonitorFailed(id string, startedAt time.Time, reason string) (failures int, counted bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.wls[id]
	if r.closed || w == nil || w.stopping != nil || w.killReason != "" || w.rec.Status.State != wire.StateRunning || !w.rec.Status.StartedAt.Equal(startedAt) {
		return 0, false
	}
	select {
	case <-w.exited:
		return 0, false
	default:
	}
	st := &w.rec.Status
	st.MonitorFailures++
	st.MonitorError = reason
	if err := r.persistLocked(); err != nil {
		r.log.Error("saving state after a failed health check", "id", id, "err", err)
	}
	return st.MonitorFailures, true
}

// Command returns a command that runs argv as spec's workload would: with
// the workload's environment (its PATH, its env, the BATON_* variables), in
// its working directory, argv[0] looked up in that PATH. It runs on the
// host, outside the workload's namespace and cgroup; ctx is that of
// exec.CommandContext. Health monitors use it.
func (r *Runner) Command(ctx context.Context, spec wire.WorkloadSpec, argv []string) (*exec.Cmd, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, fmt.Errorf("%w: workload %q: empty command", ErrInvalidSpec, spec.ID)
	}
	env, pathEnv := r.env(spec)
	dir := r.Workdir(spec)
	exe, err := lookPath(argv[0], pathEnv, dir)
	if err != nil {
		return nil, fmt.Errorf("%w: command not found: %v", ErrInvalidSpec, err)
	}
	cmd := exec.CommandContext(ctx, exe)
	cmd.Args, cmd.Env, cmd.Dir = argv, env, dir
	return cmd, nil
}

// Kill sends SIGKILL to every process of workload id (its whole cgroup,
// frozen or not) and waits until it has exited. Unlike Stop it neither waits
// for a graceful exit nor forgets the workload: it stays known as failed,
// with reason in front of its error, until Stop forgets it. It is how a
// self-fencing agent stops group resources within a bound. Killing an
// exited or unknown workload does nothing and returns its status.
func (r *Runner) Kill(ctx context.Context, id, reason string) (wire.WorkloadStatus, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return wire.WorkloadStatus{}, fmt.Errorf("kill workload %q: %w", id, ErrClosed)
	}
	w := r.wls[id]
	if w == nil {
		r.mu.Unlock()
		return wire.WorkloadStatus{ID: id, State: wire.StateStopped}, nil
	}
	select {
	case <-w.exited:
		st := w.rec.Status
		r.mu.Unlock()
		return st, nil
	default:
	}
	if w.killReason == "" {
		w.killReason = reason
	}
	path := w.rec.Cgroup
	r.mu.Unlock()

	if err := r.killGroup(ctx, path); err != nil {
		return wire.WorkloadStatus{}, fmt.Errorf("kill workload %q: %w", id, err)
	}
	select {
	case <-w.exited:
	case <-ctx.Done():
		return wire.WorkloadStatus{}, fmt.Errorf("kill workload %q: pid %d not gone after SIGKILL: %w", id, w.rec.Status.HostPID, ctx.Err())
	case <-r.done:
		return wire.WorkloadStatus{}, fmt.Errorf("kill workload %q: %w", id, ErrClosed)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log.Info("killed workload", "id", id, "pid", w.rec.Status.HostPID, "reason", reason)
	return w.rec.Status, nil
}

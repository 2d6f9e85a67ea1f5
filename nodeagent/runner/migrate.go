package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/nodeagent/cgroupv1"
	"github.com/batonhq/baton/wire"
)

// The runner's part of live migration (package nodeagent/migration drives
// it; CRIU does the dumping and restoring):
//
//	source: Freeze ─▶ (CRIU dump, LeaveRunning) ─▶ Handoff (commit) | Thaw (abort)
//	target: PrepareCgroups ─▶ (CRIU restore) ─▶ Adopt ─▶ Discard (abort)
//
// The freezer group baton/<node>/<id> is created at freeze time, not at
// start: the workload's processes are moved into it by Freeze (until none is
// left out), so a workload that is never migrated never pays for it. A
// restored workload is in its freezer group from the start (CRIU's cgroup
// remapping puts it there). Stop and Handoff remove the freezer group with
// the others.

// Sentinel errors of the migration methods; check them with errors.Is.
var (
	// ErrUnknownWorkload: the runner has no workload of that id.
	ErrUnknownWorkload = errors.New("runner: unknown workload")
	// ErrNotRunning: the workload is not in a state that allows the call
	// (for example a freeze of an exited workload, or a handoff of one that
	// is not frozen for a migration).
	ErrNotRunning = errors.New("runner: workload not in the right state")
	// ErrAlreadyKnown: the runner already has a workload of that id.
	ErrAlreadyKnown = errors.New("runner: workload already on this node")
)

// Frozen describes a workload frozen for a migration, as CRIU needs it.
type Frozen struct {
	Spec       wire.WorkloadSpec
	PID        int    // host PID of the workload's PID 1
	FreezerDir string // its freezer group directory (for CRIU's FreezeCgroup)
	Log        string // the log file the process has open (LogPath)
	Workdir    string // its working directory
	FrozenAt   time.Time
}

// CgroupPath returns the cgroup path (below each v1 hierarchy root) of
// workload id on this node: <CgroupParent>/<id>.
func (r *Runner) CgroupPath(id string) string { return filepath.Join(r.cfg.CgroupParent, id) }

// Workdir returns the working directory the runner gives spec's process.
func (r *Runner) Workdir(spec wire.WorkloadSpec) string {
	if spec.Workdir != "" {
		return spec.Workdir
	}
	return r.workloadDir(spec.ID)
}

// Freeze marks workload id as migrating away in migration (state
// wire.StateMigrating, persisted first, so that a restarted agent keeps it
// frozen), moves its whole process tree into its freezer group and freezes
// it. Freezing a workload already frozen for the same migration only makes
// sure it is frozen. If the freeze fails the workload is thawed and running
// again.
func (r *Runner) Freeze(ctx context.Context, id, migration string) (Frozen, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return Frozen{}, fmt.Errorf("freeze workload %q: %w", id, ErrClosed)
	}
	w := r.wls[id]
	switch {
	case w == nil:
		r.mu.Unlock()
		return Frozen{}, fmt.Errorf("freeze workload %q: %w", id, ErrUnknownWorkload)
	case w.stopping != nil:
		r.mu.Unlock()
		return Frozen{}, fmt.Errorf("freeze workload %q: %w: it is being stopped", id, ErrNotRunning)
	case w.rec.Status.State == wire.StateMigrating && w.rec.Migration != migration:
		r.mu.Unlock()
		return Frozen{}, fmt.Errorf("freeze workload %q: %w: it is frozen for migration %s", id, ErrNotRunning, w.rec.Migration)
	case w.rec.Status.State != wire.StateRunning && w.rec.Status.State != wire.StateMigrating:
		st := w.rec.Status.State
		r.mu.Unlock()
		return Frozen{}, fmt.Errorf("freeze workload %q: %w: it is %s", id, ErrNotRunning, st)
	}
	prev := w.rec
	w.rec.Status.State = wire.StateMigrating
	w.rec.Migration = migration
	if err := r.persistLocked(); err != nil {
		w.rec = prev
		r.mu.Unlock()
		return Frozen{}, fmt.Errorf("freeze workload %q: %w", id, err)
	}
	rec := w.rec
	r.mu.Unlock()

	cg, err := r.group(w)
	if err == nil {
		err = cg.JoinFreezer()
	}
	at := time.Now()
	if err == nil {
		err = cg.Freeze(ctx)
	}
	if err != nil {
		if _, terr := r.Thaw(context.WithoutCancel(ctx), id, migration); terr != nil {
			err = errors.Join(err, terr)
		}
		return Frozen{}, fmt.Errorf("freeze workload %q: %w", id, err)
	}
	r.log.Info("froze workload for migration", "id", id, "migration", migration, "pid", rec.Status.HostPID)
	return Frozen{
		Spec:       rec.Spec,
		PID:        rec.Status.HostPID,
		FreezerDir: cg.FreezerDir(),
		Log:        r.LogPath(id),
		Workdir:    r.Workdir(rec.Spec),
		FrozenAt:   at,
	}, nil
}

// Thaw resumes workload id after an aborted migration: it thaws its freezer
// group and sets it running again (persisted). A workload that is already
// running (not frozen for a migration) is left as it is: Thaw is idempotent.
// If the frozen process died meanwhile, Thaw returns its status and an error
// wrapping ErrNotRunning.
func (r *Runner) Thaw(ctx context.Context, id, migration string) (wire.WorkloadStatus, error) {
	r.mu.Lock()
	w := r.wls[id]
	if w == nil {
		r.mu.Unlock()
		return wire.WorkloadStatus{}, fmt.Errorf("thaw workload %q: %w", id, ErrUnknownWorkload)
	}
	if w.rec.Handoff {
		r.mu.Unlock()
		return wire.WorkloadStatus{}, fmt.Errorf("thaw workload %q: %w: it was handed off (the migration committed)", id, ErrNotRunning)
	}
	if w.rec.Status.State == wire.StateMigrating && migration != "" && w.rec.Migration != migration {
		r.mu.Unlock()
		return wire.WorkloadStatus{}, fmt.Errorf("thaw workload %q: %w: it is frozen for migration %s, not %s", id, ErrNotRunning, w.rec.Migration, migration)
	}
	r.mu.Unlock()
	cg, err := r.group(w)
	if err != nil {
		return wire.WorkloadStatus{}, err
	}
	if err := cg.Thaw(ctx); err != nil {
		return wire.WorkloadStatus{}, fmt.Errorf("thaw workload %q: %w", id, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if w.rec.Status.State == wire.StateMigrating {
		w.rec.Status.State = wire.StateRunning
		w.rec.Migration = ""
		if r.wls[id] == w {
			if err := r.persistLocked(); err != nil {
				return w.rec.Status, fmt.Errorf("thaw workload %q: thawed, but %w", id, err)
			}
		}
	}
	st := w.rec.Status
	if st.State != wire.StateRunning {
		return st, fmt.Errorf("thaw workload %q: %w: it is %s (%s)", id, ErrNotRunning, st.State, st.Error)
	}
	r.log.Info("thawed workload", "id", id, "migration", migration, "pid", st.HostPID)
	return st, nil
}

// Handoff ends workload id on this node after its migration committed: it
// kills the frozen copy with its whole tree (through its cgroups, thawing it
// so that it dies), removes its cgroups (freezer included) and forgets it,
// without ever reporting it as failed. Its log stays. The workload must be
// frozen for a migration (ErrNotRunning otherwise: a running workload is
// never killed by a handoff); an unknown id succeeds (the handoff already
// happened), after removing any cgroup left of it.
func (r *Runner) Handoff(ctx context.Context, id string) error {
	return r.forget(ctx, id, true)
}

// Discard kills and forgets workload id whatever its state, like Handoff,
// and removes its cgroups even if the runner does not know it: it is the
// abort of a migration on the target, where a restored copy may run, be
// adopted or not. Callers must be sure the id is theirs to discard.
func (r *Runner) Discard(ctx context.Context, id string) error {
	return r.forget(ctx, id, false)
}

func (r *Runner) forget(ctx context.Context, id string, handoff bool) error {
	what := "discard"
	if handoff {
		what = "hand off"
	}
	if !idRE.MatchString(id) {
		return fmt.Errorf("%s workload %q: %w: bad id", what, id, ErrInvalidSpec)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return fmt.Errorf("%s workload %q: %w", what, id, ErrClosed)
	}
	w := r.wls[id]
	path := r.CgroupPath(id)
	if w != nil {
		if handoff && w.rec.Status.State != wire.StateMigrating && !w.rec.Handoff {
			st := w.rec.Status.State
			r.mu.Unlock()
			return fmt.Errorf("%s workload %q: %w: it is %s, not frozen for a migration", what, id, ErrNotRunning, st)
		}
		if w.stopping != nil {
			ch := w.stopping
			r.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return fmt.Errorf("%s workload %q: %w", what, id, ctx.Err())
			}
			return r.forget(ctx, id, handoff)
		}
		w.rec.Handoff = true
		if err := r.persistLocked(); err != nil {
			w.rec.Handoff = false
			r.mu.Unlock()
			return fmt.Errorf("%s workload %q: %w", what, id, err)
		}
		w.stopping = make(chan struct{})
		path = w.rec.Cgroup
	}
	r.mu.Unlock()

	err := r.killGroup(ctx, path)
	if err == nil && w != nil {
		select {
		case <-w.exited:
		case <-ctx.Done():
			err = fmt.Errorf("pid %d not gone after SIGKILL: %w", w.rec.Status.HostPID, ctx.Err())
		case <-r.done:
			err = ErrClosed
		}
	}
	if err == nil {
		err = r.removeGroup(ctx, path)
	}
	if w != nil {
		r.mu.Lock()
		if err == nil && r.wls[id] == w {
			delete(r.wls, id)
			if perr := r.persistLocked(); perr != nil {
				err = perr
			}
		}
		close(w.stopping)
		w.stopping = nil
		r.mu.Unlock()
	}
	if err != nil {
		return fmt.Errorf("%s workload %q: %w", what, id, err)
	}
	r.log.Info("forgot workload", "id", id, "how", what)
	return nil
}

func (r *Runner) killGroup(ctx context.Context, path string) error {
	cg, err := cgroupv1.New(r.cgroupRoot, path)
	if err != nil {
		return err
	}
	return cg.KillAll(ctx)
}

func (r *Runner) removeGroup(ctx context.Context, path string) error {
	cg, err := cgroupv1.New(r.cgroupRoot, path)
	if err != nil {
		return err
	}
	return cg.RemoveAll(ctx)
}

// dropGroups kills and removes what is left of rec's cgroups (best effort,
// at start-up).
func (r *Runner) dropGroups(rec record) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.killGroup(ctx, rec.Cgroup); err != nil {
		r.log.Error("killing what is left of a handed-off workload", "id", rec.Spec.ID, "err", err)
	}
	if err := r.removeGroup(ctx, rec.Cgroup); err != nil {
		r.log.Error("removing cgroups of a handed-off workload", "id", rec.Spec.ID, "err", err)
	}
}

// PrepareCgroups creates the cgroups of workload spec on this node with its
// limits, and its workload directory (for its log), before a restore moves
// a migrated copy into them. It returns the cgroup path. It is idempotent;
// it refuses (ErrAlreadyKnown) if the runner already has the workload.
func (r *Runner) PrepareCgroups(spec wire.WorkloadSpec) (string, error) {
	if !idRE.MatchString(spec.ID) {
		return "", fmt.Errorf("prepare workload %q: %w: bad id", spec.ID, ErrInvalidSpec)
	}
	if spec.Resources.CPUMillis < 0 || spec.Resources.MemoryMB < 0 {
		return "", fmt.Errorf("prepare workload %q: %w: negative resources %+v", spec.ID, ErrInvalidSpec, spec.Resources)
	}
	r.mu.Lock()
	known := r.wls[spec.ID] != nil
	r.mu.Unlock()
	if known {
		return "", fmt.Errorf("prepare workload %q: %w", spec.ID, ErrAlreadyKnown)
	}
	if err := os.MkdirAll(r.workloadDir(spec.ID), 0o755); err != nil {
		return "", fmt.Errorf("prepare workload %q: workload dir: %w", spec.ID, err)
	}
	cg, err := cgroupv1.New(r.cgroupRoot, r.CgroupPath(spec.ID))
	if err != nil {
		return "", err
	}
	if err := cg.Create(); err != nil {
		return "", err
	}
	if mb := spec.Resources.MemoryMB; mb > 0 {
		if err := cg.SetMemoryLimit(mb << 20); err != nil {
			return "", err
		}
	}
	if m := spec.Resources.CPUMillis; m > 0 {
		if err := cg.SetCPUQuota(m); err != nil {
			return "", err
		}
	}
	return cg.Path(), nil
}

// Adopt registers process pid, restored by CRIU on this node (not a child of
// the agent), as workload spec.ID: running, its exit tracked through a
// pidfd (its exit status is unknown, as for a workload re-adopted after an
// agent restart), the record persisted. The process must be in the
// workload's cgroup (see PrepareCgroups). Adopting the same pid again returns
// its status (idempotent); another process under a known id is refused with
// ErrAlreadyKnown.
func (r *Runner) Adopt(ctx context.Context, spec wire.WorkloadSpec, pid int) (wire.WorkloadStatus, error) {
	if err := validateSpec(spec); err != nil {
		return wire.WorkloadStatus{}, fmt.Errorf("adopt workload %q: %w", spec.ID, err)
	}
	if err := ctx.Err(); err != nil {
		return wire.WorkloadStatus{}, err
	}
	r.startMu.Lock()
	defer r.startMu.Unlock()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return wire.WorkloadStatus{}, fmt.Errorf("adopt workload %q: %w", spec.ID, ErrClosed)
	}
	if w := r.wls[spec.ID]; w != nil {
		st := w.rec.Status
		r.mu.Unlock()
		if st.HostPID == pid {
			return st, nil
		}
		return st, fmt.Errorf("adopt workload %q (pid %d): %w with pid %d", spec.ID, pid, ErrAlreadyKnown, st.HostPID)
	}
	r.mu.Unlock()

	cg, err := cgroupv1.New(r.cgroupRoot, r.CgroupPath(spec.ID))
	if err != nil {
		return wire.WorkloadStatus{}, err
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return wire.WorkloadStatus{}, fmt.Errorf("adopt workload %q: pid %d: %w", spec.ID, pid, err)
	}
	ps, err := readProcStat(pid)
	if err == nil {
		var in bool
		in, err = cg.Contains(pid)
		if err == nil && !in {
			err = fmt.Errorf("pid %d is not in cgroup %s", pid, cg.Path())
		}
	}
	if err != nil {
		unix.Close(fd)
		return wire.WorkloadStatus{}, fmt.Errorf("adopt workload %q: %w", spec.ID, err)
	}
	w := &workload{
		rec: record{
			Spec: spec,
			Status: wire.WorkloadStatus{
				ID: spec.ID, Name: spec.Name, State: wire.StateRunning, HostPID: pid,
				StartedAt: time.Now().UTC(), Resources: spec.Resources,
			},
			StartTicks: ps.startTicks,
			Cgroup:     cg.Path(),
		},
		pidfd:  fd,
		exited: make(chan struct{}),
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.wls[spec.ID] = w
	if err := r.persistLocked(); err != nil {
		delete(r.wls, spec.ID)
		unix.Close(fd)
		return wire.WorkloadStatus{}, fmt.Errorf("adopt workload %q: %w", spec.ID, err)
	}
	r.wg.Add(1)
	go r.watch(w)
	r.log.Info("adopted restored workload", "id", spec.ID, "pid", pid, "cgroup", w.rec.Cgroup)
	return w.rec.Status, nil
}

// Continue sends SIGCONT to every process of workload id's cgroups: a
// post-copy dump leaves the source stopped (CRIU's --leave-stopped) as well
// as frozen, and an aborted migration must undo both (Thaw, then Continue).
// A workload without processes is not an error.
func (r *Runner) Continue(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !idRE.MatchString(id) {
		return fmt.Errorf("continue workload %q: %w: bad id", id, ErrInvalidSpec)
	}
	r.mu.Lock()
	path := r.CgroupPath(id)
	if w := r.wls[id]; w != nil {
		path = w.rec.Cgroup
	}
	r.mu.Unlock()
	cg, err := cgroupv1.New(r.cgroupRoot, path)
	if err != nil {
		return err
	}
	pids, err := cg.Procs()
	if err != nil {
		return fmt.Errorf("continue workload %q: %w", id, err)
	}
	for _, pid := range pids {
		if err := unix.Kill(pid, unix.SIGCONT); err != nil && err != unix.ESRCH {
			return fmt.Errorf("continue workload %q: pid %d: %w", id, pid, err)
		}
	}
	return nil
}

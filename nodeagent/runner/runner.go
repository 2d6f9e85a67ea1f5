package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/nodeagent/cgroupv1"
	"github.com/batonhq/baton/wire"
)

// Sentinel errors; check them with errors.Is.
var (
	// ErrInvalidSpec: the workload cannot be started as specified (bad id,
	// empty command, missing workdir, command not found or not executable).
	ErrInvalidSpec = errors.New("runner: invalid workload spec")
	// ErrClosed: the Runner was closed.
	ErrClosed = errors.New("runner: closed")
	// ErrCorruptState: the state file cannot be read; New refuses to guess.
	ErrCorruptState = errors.New("runner: corrupt state file")
	// ErrDataDirInUse: another Runner (another agent) holds the data dir.
	ErrDataDirInUse = errors.New("runner: data dir in use")
)

// DefaultStopGrace is how long Stop waits after SIGTERM before SIGKILL.
const DefaultStopGrace = 5 * time.Second

// DefaultPath is the PATH of every workload unless its spec sets one.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Environment variables the runner sets for every workload; a spec cannot
// override them.
const (
	EnvNode       = "BATON_NODE"
	EnvWorkload   = "BATON_WORKLOAD" // the workload's name (its ID if it has none)
	EnvWorkloadID = "BATON_WORKLOAD_ID"
)

// startTimeout bounds the wait for the workload's exec when ctx has no
// deadline.
const startTimeout = 10 * time.Second

// Config configures a Runner.
type Config struct {
	DataDir string // required: state file and workloads/<id>/ live here
	Node    string // required: the node name, passed to workloads
	// CgroupParent is the cgroup path (below each v1 hierarchy root) under
	// which each workload gets <CgroupParent>/<id>. Default "baton/<Node>".
	CgroupParent string
	Logger       *slog.Logger  // default: discard
	StopGrace    time.Duration // default DefaultStopGrace
	// OnExit, if set, is called with a workload's final status when its
	// process exits by itself or through Kill; not for an exit that a Stop
	// in progress caused (Stop's return reports it), nor when the Runner
	// closes. It must not block.
	OnExit func(wire.WorkloadStatus)
}

// Runner runs the workloads of kind process on one node. Its methods are safe
// for concurrent use. Only one Runner at a time can use a data dir.
type Runner struct {
	cfg        Config
	log        *slog.Logger
	cgroupRoot string
	lock       *os.File // flock on <DataDir>/lock, held until Close

	// Lock order: startMu before mu. startMu serialises Start (and Close
	// against Start) so that a start, which forks and waits for an exec,
	// does not hold mu, which List and the exit watchers need.
	startMu sync.Mutex
	mu      sync.Mutex
	closed  bool
	wls     map[string]*workload

	done         chan struct{} // closed by Close
	wakeR, wakeW int           // pipe; Close closes wakeW to wake the watchers
	wg           sync.WaitGroup
}

// workload is one known workload. All fields but exited are guarded by
// Runner.mu; exited is closed (under mu) once the process has exited and
// rec.Status says how.
type workload struct {
	rec      record
	pidfd    int // -1 once the process has exited or was never found
	child    bool
	exited   chan struct{}
	stopping chan struct{} // non-nil while a Stop runs; closed when it ends
	// killReason, set by Kill before it kills, goes in front of the exit's
	// error.
	killReason string
}

var idRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

// New creates a Runner on cfg.DataDir and re-adopts the workloads of its
// state file that still run (same PID and same start time). Workloads whose
// process is gone are kept as failed until stopped.
func New(cfg Config) (*Runner, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("runner: Config.DataDir is required")
	}
	if err := wire.ValidNodeName(cfg.Node); err != nil {
		return nil, fmt.Errorf("runner: %w", err)
	}
	if cfg.CgroupParent == "" {
		cfg.CgroupParent = "baton/" + cfg.Node
	}
	if _, err := cgroupv1.New(cgroupv1.DefaultRoot, cfg.CgroupParent); err != nil {
		return nil, fmt.Errorf("runner: cgroup parent: %w", err)
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = DefaultStopGrace
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "workloads"), 0o755); err != nil {
		return nil, fmt.Errorf("runner: data dir: %w", err)
	}
	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	st, err := readState(cfg.DataDir)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("runner: %w", err)
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		lock.Close()
		return nil, fmt.Errorf("runner: wake pipe: %w", err)
	}
	r := &Runner{
		cfg:        cfg,
		log:        log,
		cgroupRoot: cgroupv1.DefaultRoot,
		lock:       lock,
		wls:        make(map[string]*workload),
		done:       make(chan struct{}),
		wakeR:      p[0],
		wakeW:      p[1],
	}
	changed := false
	for _, rec := range st.Workloads {
		if rec.Spec.ID == "" || r.wls[rec.Spec.ID] != nil {
			changed = true
			continue
		}
		w, ch := r.adopt(rec)
		changed = changed || ch
		if rec.Handoff && w.pidfd < 0 {
			// Killed for a committed migration before the record went:
			// finish forgetting it.
			r.dropGroups(rec)
			changed = true
			continue
		}
		r.wls[rec.Spec.ID] = w
	}
	if changed {
		r.mu.Lock()
		err := r.persistLocked()
		r.mu.Unlock()
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("runner: %w", err)
		}
	}
	for _, w := range r.wls {
		if w.pidfd >= 0 {
			r.wg.Add(1)
			go r.watch(w)
		}
	}
	return r, nil
}

// lockDataDir takes an exclusive flock on <dir>/lock, so that two agents
// never manage (and re-adopt) the same workloads. The kernel drops the lock
// when the agent dies.
func lockDataDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("runner: lock data dir: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if err == unix.EWOULDBLOCK {
			return nil, fmt.Errorf("%w: %s is locked by another agent (or Runner): run one agent per data dir", ErrDataDirInUse, dir)
		}
		return nil, fmt.Errorf("runner: lock data dir %s: %w", dir, err)
	}
	return f, nil
}

// adopt turns a record of the state file into a workload, checking that a
// workload recorded as running is still the same process. It reports whether
// the record changed.
func (r *Runner) adopt(rec record) (*workload, bool) {
	w := &workload{rec: rec, pidfd: -1, exited: make(chan struct{})}
	switch rec.Status.State {
	case wire.StateRunning, wire.StateStarting:
	case wire.StateMigrating:
		// Frozen for a migration: a frozen process is alive and keeps its
		// identity; it stays frozen until the migration's commit or abort.
	default:
		close(w.exited)
		return w, false
	}
	id, pid := rec.Spec.ID, rec.Status.HostPID
	reason := ""
	if pid <= 0 || rec.StartTicks == 0 {
		reason = "the state file has no process identity for it"
	} else if fd, err := unix.PidfdOpen(pid, 0); err != nil {
		reason = fmt.Sprintf("process %d is gone", pid)
	} else if ps, err := readProcStat(pid); err != nil || ps.startTicks != rec.StartTicks {
		// Opening the pidfd first pins the process; if the start time
		// matches, the pidfd refers to our workload.
		unix.Close(fd)
		reason = fmt.Sprintf("process %d is gone (the PID now belongs to another process)", pid)
	} else {
		w.pidfd = fd
		r.log.Info("re-adopted workload", "id", id, "pid", pid)
		return w, false
	}
	r.log.Warn("workload exited while the agent was not running", "id", id, "pid", pid, "reason", reason)
	w.rec.Status.State = wire.StateFailed
	w.rec.Status.ExitCode = nil
	w.rec.Status.Error = "exited while the agent was not running, exit status unknown: " + reason
	close(w.exited)
	return w, true
}

// Start starts the workload spec and returns its status, with the process's
// host PID. It is idempotent by spec.ID: starting a known ID returns its
// current status (running or exited) and starts nothing. The state file is
// saved before Start returns. If Start fails, nothing of the workload is left
// running or saved (its log directory stays); errors caused by the spec wrap
// ErrInvalidSpec.
func (r *Runner) Start(ctx context.Context, spec wire.WorkloadSpec) (wire.WorkloadStatus, error) {
	failed := func(err error) (wire.WorkloadStatus, error) {
		return wire.WorkloadStatus{
			ID: spec.ID, Name: spec.Name, State: wire.StateFailed,
			Error: err.Error(), Resources: spec.Resources,
		}, err
	}
	if err := validateSpec(spec); err != nil {
		return failed(err)
	}
	r.startMu.Lock()
	defer r.startMu.Unlock()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return failed(fmt.Errorf("start workload %q: %w", spec.ID, ErrClosed))
	}
	if w := r.wls[spec.ID]; w != nil {
		st := w.rec.Status
		r.mu.Unlock()
		exited := st.State == wire.StateStopped || st.State == wire.StateFailed
		if spec.Group == nil || !exited {
			return st, nil
		}
		// A group resource asked to start again after its run ended (the
		// node was fenced and came back, or it crashed): the engine wants
		// a new run, not the report of the old one. Forget the old run.
		if _, err := r.Stop(ctx, spec.ID); err != nil {
			return failed(fmt.Errorf("start workload %q: clearing its ended run: %w", spec.ID, err))
		}
	} else {
		r.mu.Unlock()
	}

	w, err := r.launch(ctx, spec)
	if err != nil {
		return failed(fmt.Errorf("start workload %q: %w", spec.ID, err))
	}
	r.mu.Lock()
	r.wls[spec.ID] = w
	if err := r.persistLocked(); err != nil {
		delete(r.wls, spec.ID)
		r.mu.Unlock()
		r.abort(w)
		return failed(fmt.Errorf("start workload %q: %w", spec.ID, err))
	}
	st := w.rec.Status
	r.wg.Add(1)
	go r.watch(w)
	r.mu.Unlock()
	r.log.Info("started workload", "id", spec.ID, "name", spec.Name, "pid", st.HostPID, "cgroup", w.rec.Cgroup)
	return st, nil
}

func validateSpec(spec wire.WorkloadSpec) error {
	if !idRE.MatchString(spec.ID) {
		return fmt.Errorf("%w: id %q: use 1-128 letters, digits, '.', '-' or '_', starting with a letter or digit", ErrInvalidSpec, spec.ID)
	}
	if len(spec.Command) == 0 || spec.Command[0] == "" {
		return fmt.Errorf("%w: workload %q has an empty command", ErrInvalidSpec, spec.ID)
	}
	if spec.Workdir != "" && !filepath.IsAbs(spec.Workdir) {
		return fmt.Errorf("%w: workload %q: workdir %q is not an absolute path", ErrInvalidSpec, spec.ID, spec.Workdir)
	}
	if spec.Resources.CPUMillis < 0 || spec.Resources.MemoryMB < 0 {
		return fmt.Errorf("%w: workload %q: negative resources %+v", ErrInvalidSpec, spec.ID, spec.Resources)
	}
	for k, v := range spec.Env {
		if k == "" || slices.Contains([]byte(k), '=') || slices.Contains([]byte(k+v), 0) {
			return fmt.Errorf("%w: workload %q: bad environment variable %q", ErrInvalidSpec, spec.ID, k)
		}
	}
	return nil
}

// env builds the workload's environment: DefaultPath, then spec.Env, then the
// BATON_* variables.
func (r *Runner) env(spec wire.WorkloadSpec) (env []string, path string) {
	m := map[string]string{"PATH": DefaultPath}
	maps.Copy(m, spec.Env)
	name := spec.Name
	if name == "" {
		name = spec.ID
	}
	m[EnvNode] = r.cfg.Node
	m[EnvWorkload] = name
	m[EnvWorkloadID] = spec.ID
	for _, k := range slices.Sorted(maps.Keys(m)) {
		env = append(env, k+"="+m[k])
	}
	return env, m["PATH"]
}

func (r *Runner) workloadDir(id string) string {
	return filepath.Join(r.cfg.DataDir, "workloads", id)
}

// LogPath returns the file that workload id's stdout and stderr are appended
// to.
func (r *Runner) LogPath(id string) string {
	return filepath.Join(r.workloadDir(id), "output.log")
}

// launch starts the process of spec in its cgroup and waits until it has
// exec'd the user's command. On error nothing is left running.
func (r *Runner) launch(ctx context.Context, spec wire.WorkloadSpec) (_ *workload, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	env, pathEnv := r.env(spec)
	workdir := spec.Workdir
	if workdir == "" {
		workdir = r.workloadDir(spec.ID)
	} else if fi, err := os.Stat(workdir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%w: workdir %q does not exist or is not a directory: create it or fix the spec", ErrInvalidSpec, workdir)
	}
	if err := os.MkdirAll(r.workloadDir(spec.ID), 0o755); err != nil {
		return nil, fmt.Errorf("workload dir: %w", err)
	}
	exe, err := lookPath(spec.Command[0], pathEnv, workdir)
	if err != nil {
		return nil, fmt.Errorf("%w: command not found: %v", ErrInvalidSpec, err)
	}

	cg, err := cgroupv1.New(r.cgroupRoot, filepath.Join(r.cfg.CgroupParent, spec.ID))
	if err != nil {
		return nil, err
	}
	if err := cg.Create(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if rerr := cg.Remove(context.Background()); rerr != nil {
				r.log.Error("removing cgroup of failed start", "id", spec.ID, "err", rerr)
			}
		}
	}()
	if mb := spec.Resources.MemoryMB; mb > 0 {
		if err := cg.SetMemoryLimit(mb << 20); err != nil {
			return nil, err
		}
	}
	if m := spec.Resources.CPUMillis; m > 0 {
		if err := cg.SetCPUQuota(m); err != nil {
			return nil, err
		}
	}

	logf, err := os.OpenFile(r.LogPath(spec.ID), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	defer logf.Close()
	goR, goW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pipe: %w", err)
	}
	defer goW.Close()
	statusR, statusW, err := os.Pipe()
	if err != nil {
		goR.Close()
		return nil, fmt.Errorf("pipe: %w", err)
	}
	defer statusR.Close()

	cmd := &exec.Cmd{
		// Re-execute the agent's own binary as the shim (see shim.go).
		Path:       "/proc/self/exe",
		Args:       append([]string{shimArg0, exe}, spec.Command...),
		Env:        append(env, shimEnv+"="+shimEnvValue),
		Dir:        workdir,
		Stdin:      nil, // /dev/null
		Stdout:     logf,
		Stderr:     logf,
		ExtraFiles: []*os.File{goR, statusW}, // fds 3 and 4
		SysProcAttr: &syscall.SysProcAttr{
			// New session (so a new process group, away from the agent's)
			// created inside a new PID namespace: the workload is PID 1 and
			// session leader there. No Pdeathsig: it must outlive the agent.
			Setsid:     true,
			Cloneflags: syscall.CLONE_NEWPID,
		},
	}
	err = cmd.Start()
	goR.Close()
	statusW.Close()
	if err != nil {
		return nil, fmt.Errorf("fork: %w", err)
	}
	pid := cmd.Process.Pid
	kill := func(err error) (*workload, error) {
		goW.Close() // the shim exits 126 on EOF
		cmd.Process.Kill()
		cmd.Wait()
		return nil, err
	}
	// The shim is blocked on the go pipe: it runs nothing of the user's
	// before it is in its cgroups, so the limits apply from the first
	// instruction of the command.
	if err := cg.Add(pid); err != nil {
		return kill(err)
	}
	ps, err := readProcStat(pid)
	if err != nil {
		return kill(fmt.Errorf("read start time of pid %d: %w", pid, err))
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return kill(fmt.Errorf("pidfd of pid %d: %w", pid, err))
	}
	if _, err := goW.Write([]byte{1}); err != nil {
		unix.Close(pidfd)
		return kill(fmt.Errorf("release shim: %w", err))
	}
	goW.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(startTimeout)
	}
	statusR.SetReadDeadline(deadline)
	msg, err := io.ReadAll(statusR)
	if err != nil {
		unix.Close(pidfd)
		return kill(fmt.Errorf("waiting for pid %d to exec %s: %w", pid, exe, err))
	}
	if len(msg) > 0 {
		unix.Close(pidfd)
		return kill(fmt.Errorf("%w: %s", ErrInvalidSpec, msg))
	}
	// From here on the pidfd is the handle; exit is collected by watch.
	cmd.Process.Release()
	return &workload{
		rec: record{
			Spec: spec,
			Status: wire.WorkloadStatus{
				ID:        spec.ID,
				Name:      spec.Name,
				State:     wire.StateRunning,
				HostPID:   pid,
				StartedAt: time.Now().UTC(),
				Resources: spec.Resources,
				Group:     spec.Group,
			},
			StartTicks: ps.startTicks,
			Cgroup:     cg.Path(),
		},
		pidfd:  pidfd,
		child:  true,
		exited: make(chan struct{}),
	}, nil
}

// abort kills a workload that was launched but could not be registered.
func (r *Runner) abort(w *workload) {
	unix.PidfdSendSignal(w.pidfd, unix.SIGKILL, nil, 0)
	reap(w.pidfd) // blocks until it has exited: it is our child
	unix.Close(w.pidfd)
	if cg, err := r.group(w); err == nil {
		if err := cg.Remove(context.Background()); err != nil {
			r.log.Error("removing cgroup of aborted start", "id", w.rec.Spec.ID, "err", err)
		}
	}
}

func (r *Runner) group(w *workload) (*cgroupv1.Group, error) {
	return cgroupv1.New(r.cgroupRoot, w.rec.Cgroup)
}

// watch waits for w's process to exit (or for Close) and records the exit.
func (r *Runner) watch(w *workload) {
	defer r.wg.Done()
	fds := []unix.PollFd{
		{Fd: int32(r.wakeR), Events: unix.POLLIN},
		{Fd: int32(w.pidfd), Events: unix.POLLIN},
	}
	for {
		fds[0].Revents, fds[1].Revents = 0, 0
		_, err := unix.Poll(fds, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			r.log.Error("watching workload", "id", w.rec.Spec.ID, "err", err)
			return
		}
		if fds[0].Revents != 0 {
			// Closing: leave the process alone and unreaped; a later
			// Runner re-adopts it.
			return
		}
		if fds[1].Revents != 0 {
			break
		}
	}
	res := reap(w.pidfd)
	st, byStop := r.recordExit(w, res)
	if r.cfg.OnExit != nil && !byStop {
		r.cfg.OnExit(st)
	}
}

// recordExit records w's exit and returns its final status and whether a
// Stop in progress caused it.
func (r *Runner) recordExit(w *workload, res exitResult) (_ wire.WorkloadStatus, byStop bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	byStop = w.stopping != nil && w.killReason == ""
	unix.Close(w.pidfd)
	w.pidfd = -1
	st := &w.rec.Status
	switch {
	case w.rec.Handoff:
		// Killed on purpose (see Handoff): not a failure; the record goes.
	case !res.known:
		st.State = wire.StateFailed
		st.ExitCode = nil
		st.Error = "exited while not a child of this agent process, exit status unknown"
	case res.signal != 0:
		st.State = wire.StateFailed
		st.ExitCode = &res.code
		st.Error = "killed by signal " + unix.SignalName(res.signal)
	case res.code == 0:
		st.State = wire.StateStopped
		st.ExitCode = &res.code
	default:
		st.State = wire.StateFailed
		st.ExitCode = &res.code
		st.Error = fmt.Sprintf("exited with status %d", res.code)
	}
	if w.killReason != "" && !w.rec.Handoff {
		st.Error = w.killReason + " (" + st.Error + ")"
	}
	close(w.exited)
	r.log.Info("workload exited", "id", w.rec.Spec.ID, "pid", st.HostPID, "state", st.State, "error", st.Error)
	final := *st
	final.Group = w.rec.Spec.Group
	if r.closed || r.wls[w.rec.Spec.ID] != w {
		return final, byStop
	}
	if err := r.persistLocked(); err != nil {
		r.log.Error("saving state after workload exit", "id", w.rec.Spec.ID, "err", err)
	}
	return final, byStop
}

// persistLocked saves the state file. r.mu must be held.
func (r *Runner) persistLocked() error {
	st := stateFile{V: stateVersion, Node: r.cfg.Node, Workloads: []record{}}
	for _, id := range slices.Sorted(maps.Keys(r.wls)) {
		st.Workloads = append(st.Workloads, r.wls[id].rec)
	}
	return writeState(r.cfg.DataDir, st)
}

// signal sends sig to w's process through its pidfd, if it still runs.
func (r *Runner) signal(w *workload, sig unix.Signal) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if w.pidfd < 0 || r.closed {
		return nil
	}
	err := unix.PidfdSendSignal(w.pidfd, sig, nil, 0)
	if err != nil && err != unix.ESRCH {
		return fmt.Errorf("signal %s to pid %d: %w", unix.SignalName(sig), w.rec.Status.HostPID, err)
	}
	return nil
}

// Stop stops workload id with its whole process tree and forgets it: SIGTERM
// to its PID 1, SIGKILL after the grace period (which kills the whole PID
// namespace), SIGKILL to anything left in its cgroup; then it removes the
// cgroup and the workload from the state file (its log stays). It returns the
// final status: stopped if it was running, else how it had exited. Stopping
// an unknown id succeeds with state stopped. If ctx ends first, SIGKILL has
// been sent and the workload stays known; Stop can be called again.
//
// A PID 1 ignores SIGTERM unless it handles it, so a workload whose PID 1
// has no SIGTERM handler (per /proc/PID/status) is killed without waiting.
func (r *Runner) Stop(ctx context.Context, id string) (wire.WorkloadStatus, error) {
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return wire.WorkloadStatus{}, fmt.Errorf("stop workload %q: %w", id, ErrClosed)
		}
		w := r.wls[id]
		if w == nil {
			r.mu.Unlock()
			return wire.WorkloadStatus{ID: id, State: wire.StateStopped}, nil
		}
		if ch := w.stopping; ch != nil {
			r.mu.Unlock()
			select {
			case <-ch:
				continue // see what the other Stop achieved
			case <-ctx.Done():
				return wire.WorkloadStatus{}, fmt.Errorf("stop workload %q: %w", id, ctx.Err())
			case <-r.done:
				return wire.WorkloadStatus{}, fmt.Errorf("stop workload %q: %w", id, ErrClosed)
			}
		}
		w.stopping = make(chan struct{})
		wasRunning := w.rec.Status.State == wire.StateRunning || w.rec.Status.State == wire.StateMigrating
		r.mu.Unlock()

		err := r.terminate(ctx, w)

		r.mu.Lock()
		st := w.rec.Status
		if err == nil {
			if wasRunning {
				st.State = wire.StateStopped
				st.Error = ""
			}
			delete(r.wls, id)
			if perr := r.persistLocked(); perr != nil {
				err = fmt.Errorf("stop workload %q: stopped, but %w", id, perr)
			}
		}
		close(w.stopping)
		w.stopping = nil
		r.mu.Unlock()
		if err == nil {
			r.log.Info("stopped workload", "id", id, "pid", st.HostPID)
		}
		return st, err
	}
}

func (r *Runner) terminate(ctx context.Context, w *workload) error {
	id, pid := w.rec.Spec.ID, w.rec.Status.HostPID
	cg, err := r.group(w)
	if err != nil {
		return fmt.Errorf("stop workload %q: %w", id, err)
	}
	r.mu.Lock()
	frozen := w.rec.Status.State == wire.StateMigrating
	r.mu.Unlock()
	select {
	case <-w.exited:
	default:
		if frozen {
			// Frozen for a migration: SIGTERM cannot be handled; kill the
			// tree through its cgroups (KillAll thaws it to let it die).
			if err := cg.KillAll(ctx); err != nil {
				return fmt.Errorf("stop workload %q: %w", id, err)
			}
			select {
			case <-w.exited:
			case <-ctx.Done():
				return fmt.Errorf("stop workload %q: pid %d not gone after SIGKILL: %w", id, pid, ctx.Err())
			case <-r.done:
				return fmt.Errorf("stop workload %q: %w", id, ErrClosed)
			}
			break
		}
		grace := r.cfg.StopGrace
		if caught, err := catchesSignal(pid, unix.SIGTERM); err == nil && !caught {
			// PID 1 of a namespace never receives a signal it has no
			// handler for: SIGTERM would be dropped, so do not wait for it.
			grace = 0
		}
		if err := r.signal(w, unix.SIGTERM); err != nil {
			return fmt.Errorf("stop workload %q: %w", id, err)
		}
		t := time.NewTimer(grace)
		select {
		case <-w.exited:
		case <-t.C:
			r.log.Info("workload did not exit on SIGTERM, killing it", "id", id, "pid", pid, "grace", r.cfg.StopGrace)
		case <-ctx.Done():
		case <-r.done:
		}
		t.Stop()
		// Killing PID 1 of the namespace kills every process in it.
		if err := r.signal(w, unix.SIGKILL); err != nil {
			return fmt.Errorf("stop workload %q: %w", id, err)
		}
		select {
		case <-w.exited:
		case <-ctx.Done():
			return fmt.Errorf("stop workload %q: pid %d not gone after SIGKILL: %w", id, pid, ctx.Err())
		case <-r.done:
			return fmt.Errorf("stop workload %q: %w", id, ErrClosed)
		}
	}
	// Anything that joined the cgroup from outside the namespace.
	if err := cg.KillAll(ctx); err != nil {
		return fmt.Errorf("stop workload %q: %w", id, err)
	}
	if err := cg.RemoveAll(ctx); err != nil {
		return fmt.Errorf("stop workload %q: %w", id, err)
	}
	return nil
}

// StopAll stops every workload concurrently (see Stop).
func (r *Runner) StopAll(ctx context.Context) error {
	r.mu.Lock()
	ids := slices.Collect(maps.Keys(r.wls))
	r.mu.Unlock()
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			_, errs[i] = r.Stop(ctx, id)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// List returns the status of every known workload, running or exited, sorted
// by ID. It never returns nil.
func (r *Runner) List() []wire.WorkloadStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]wire.WorkloadStatus, 0, len(r.wls))
	for _, id := range slices.Sorted(maps.Keys(r.wls)) {
		w := r.wls[id]
		st := w.rec.Status
		st.Group = w.rec.Spec.Group
		// Resident memory, measured now: the scheduler needs it to choose a
		// migration target that can hold the workload.
		if st.State == wire.StateRunning || st.State == wire.StateMigrating {
			if cg, err := r.group(w); err == nil {
				st.RSSBytes, _ = cg.ResidentBytes()
			}
		}
		out = append(out, st)
	}
	return out
}

// Close stops the Runner's goroutines and releases its file descriptors. It
// does not stop workloads: they keep running and a new Runner on the same
// DataDir re-adopts them. Calls after the first do nothing.
func (r *Runner) Close() error {
	r.startMu.Lock()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		r.startMu.Unlock()
		return nil
	}
	r.closed = true
	close(r.done)
	r.mu.Unlock()
	r.startMu.Unlock()

	unix.Close(r.wakeW)
	r.wg.Wait()
	unix.Close(r.wakeR)
	r.mu.Lock()
	for _, w := range r.wls {
		if w.pidfd >= 0 {
			unix.Close(w.pidfd)
			w.pidfd = -1
		}
	}
	r.mu.Unlock()
	r.lock.Close() // releases the flock
	return nil
}

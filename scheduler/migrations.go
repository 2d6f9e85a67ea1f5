package scheduler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/batonhq/baton/migrate"
	"github.com/batonhq/baton/scheduler/store"
	"github.com/batonhq/baton/wire"
)

// ErrUnsupported marks a request the nodes cannot serve (no CRIU, or a
// migration mode their kernels lack).
var ErrUnsupported = errors.New("unsupported")

// MigrationAgents carries out migration operations on agents (see
// wire/migration.go). NATSAgents implements it; an AgentClient that does not
// cannot migrate.
type MigrationAgents interface {
	Migrate(ctx context.Context, node, op string, cmd wire.MigrationCmd) (wire.MigrationReply, error)
}

// MigrationRequest is the body of POST /v1/workloads/{id}/migrate.
type MigrationRequest struct {
	To   string `json:"to,omitempty"`   // target node; empty lets placement choose
	Mode string `json:"mode,omitempty"` // auto (default), stop-copy, pre-copy, post-copy
}

// MigrationView is a migration as the API shows it.
type MigrationView struct {
	ID            string             `json:"id"`
	Workload      string             `json:"workload"`
	WorkloadName  string             `json:"workload_name"`
	Source        string             `json:"source"`
	Target        string             `json:"target"`
	RequestedMode string             `json:"requested_mode"`
	Mode          string             `json:"mode"`
	ModeReason    string             `json:"mode_reason"`
	State         string             `json:"state"` // the phase; done, failed and lost are final
	Reason        string             `json:"reason,omitempty"`
	FrozenMS      float64            `json:"frozen_ms"`
	TotalMS       float64            `json:"total_ms"`
	BytesMoved    int64              `json:"bytes_moved"`
	TargetPID     int                `json:"target_pid,omitempty"`
	Phases        []MigrationPhaseMS `json:"phases"`
	StartedAt     time.Time          `json:"started_at"`
	EndedAt       time.Time          `json:"ended_at,omitzero"`
}

// MigrationPhaseMS is how long one phase took.
type MigrationPhaseMS struct {
	Phase string  `json:"phase"`
	MS    float64 `json:"ms"`
}

// migrationRun is one migration the server drives, or drove.
type migrationRun struct {
	view     MigrationView
	cmd      wire.MigrationCmd // grows as replies arrive (page server, source paths)
	mach     *migrate.Machine  // nil for a migration loaded from the store and not driven here
	attempts int               // abort and commit attempts so far
	// before is the view as a previous driver left it, for a migration
	// resumed after a server restart (nil otherwise): its phases come
	// first in the view.
	before *MigrationView
}

// Per-operation timeouts. Dump and send-images scale with the workload's
// memory; these bound a few GiB on a slow link.
var migrationOpTimeout = map[string]time.Duration{
	wire.OpMigratePrepare:    30 * time.Second,
	wire.OpMigrateDump:       5 * time.Minute,
	wire.OpMigrateSendImages: 5 * time.Minute,
	wire.OpMigrateRestore:    2 * time.Minute,
	// The target's agent gives up on its own when pages stop coming
	// (nodeagent/migration DefaultPageStall); this bounds a slow link.
	wire.OpMigrateWaitPages: 5 * time.Minute,
	wire.OpMigrateCommit:    30 * time.Second,
	wire.OpMigrateAbort:     60 * time.Second,
}

// linkBytesPerSecond is assumed for mode choice until agents measure their
// links: 1 Gbit/s.
const linkBytesPerSecond = 125 << 20

func nodeFeatures(f *wire.NodeFeatures) migrate.Features {
	if f == nil {
		return migrate.Features{}
	}
	// PreDumpRounds stays false: no agent carries out pre-copy's rounds yet,
	// so pre-copy is refused with that reason even where the kernel tracks
	// dirty pages (and auto never picks it).
	return migrate.Features{MemDirtyTrack: f.MemDirtyTrack, LazyPages: f.LazyPages, UFFD: f.UFFD}
}

// StartMigration validates a migration of the workload id (or name), picks
// the target and the mode, marks the workload migrating and starts driving
// the migration in the background.
func (s *Server) StartMigration(ctx context.Context, idOrName string, req MigrationRequest) (MigrationView, error) {
	agents, ok := s.cfg.Agents.(MigrationAgents)
	if !ok {
		return MigrationView{}, fmt.Errorf("%w: this server's agent client cannot migrate", ErrUnsupported)
	}
	mode := migrate.Mode(req.Mode)
	if mode == "" {
		mode = migrate.ModeAuto
	}
	switch mode {
	case migrate.ModeAuto, migrate.ModeStopCopy, migrate.ModePreCopy, migrate.ModePostCopy:
	default:
		return MigrationView{}, fmt.Errorf("%w: mode %q is unknown: use auto, stop-copy, pre-copy or post-copy", ErrInvalid, req.Mode)
	}
	if req.To != "" {
		if err := wire.ValidNodeName(req.To); err != nil {
			return MigrationView{}, fmt.Errorf("%w: to: %v", ErrInvalid, err)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.notLeaderLocked(); err != nil {
		return MigrationView{}, err
	}
	w, err := s.findLocked(idOrName)
	if err != nil {
		return MigrationView{}, err
	}
	switch {
	case w.Migration != "":
		return MigrationView{}, fmt.Errorf("%w: workload %q is already migrating (%s): one migration at a time", ErrConflict, w.Name, w.Migration)
	case w.Desired != store.DesiredRunning || w.State != wire.StateRunning:
		return MigrationView{}, fmt.Errorf("%w: workload %q is %s, not running: only a running workload can move", ErrConflict, w.Name, w.State)
	case req.To == w.Node:
		return MigrationView{}, fmt.Errorf("%w: workload %q already runs on %s", ErrInvalid, w.Name, w.Node)
	}
	src := s.reports[w.Node].hb
	if src.Features == nil || !src.Features.CRIU {
		return MigrationView{}, fmt.Errorf("%w: node %s cannot checkpoint: CRIU is not available there (run make deps on it)", ErrUnsupported, w.Node)
	}
	rss := int64(0)
	for _, st := range src.Workloads {
		if st.ID == w.ID {
			rss = st.RSSBytes
		}
	}

	// The target must fit the workload's requests and its resident memory.
	preq := WorkloadRequest{Name: w.Name, Command: w.Command, Resources: w.Resources, Constraints: w.Constraints, Strategy: w.Strategy}
	preq.Resources.MemoryMB = max(preq.Resources.MemoryMB, (rss+(1<<20)-1)>>20)
	preq.Constraints.AvoidNodes = append(slices.Clone(preq.Constraints.AvoidNodes), w.Node)
	if req.To != "" {
		preq.Constraints.Nodes = []string{req.To}
	}
	pr := preq.placementRequest(s.cfg.DefaultStrategy)
	// The workload itself must not count against anti-affinity with its own name.
	pr.Constraints.AntiAffinity = slices.DeleteFunc(slices.Clone(pr.Constraints.AntiAffinity), func(n string) bool { return n == w.Name })
	dec, err := s.placementLocked().Place(pr)
	if err != nil {
		return MigrationView{}, fmt.Errorf("migrating workload %q: %w", w.Name, err)
	}
	target := dec.Node
	dst := s.reports[target].hb
	if dst.Features == nil || !dst.Features.CRIU {
		return MigrationView{}, fmt.Errorf("%w: node %s cannot restore: CRIU is not available there (run make deps on it)", ErrUnsupported, target)
	}
	resolved, why, err := migrate.Resolve(mode, nodeFeatures(src.Features), nodeFeatures(dst.Features), rss, linkBytesPerSecond, s.cfg.MigrationPolicy)
	if err != nil {
		return MigrationView{}, fmt.Errorf("%w: migrating workload %q from %s to %s: %v", ErrUnsupported, w.Name, w.Node, target, err)
	}

	now := s.cfg.Clock.Now()
	run := &migrationRun{
		view: MigrationView{
			ID: "m-" + newID()[2:], Workload: w.ID, WorkloadName: w.Name, Source: w.Node, Target: target,
			RequestedMode: string(mode), Mode: string(resolved), ModeReason: why, StartedAt: now,
			Phases: []MigrationPhaseMS{},
		},
	}
	run.cmd = wire.MigrationCmd{ID: run.view.ID, Workload: w.Spec(), Source: w.Node, Target: target, Mode: string(resolved)}
	mach, actions, err := migrate.New(migrate.Config{ID: run.view.ID, Workload: w.ID, Source: w.Node, Target: target, Mode: resolved}, now)
	if err != nil {
		return MigrationView{}, fmt.Errorf("migrating workload %q: %w", w.Name, err)
	}
	run.mach = mach
	run.view.State = string(mach.Phase())
	s.migrations[run.view.ID] = run
	s.migrationOrder = append(s.migrationOrder, run.view.ID)
	s.trimMigrationsLocked()
	s.saveMigrationLocked(run)

	w.Migration, w.MigrationTarget, w.State, w.UpdatedAt = run.view.ID, target, wire.StateMigrating, now
	s.saveLocked(ctx, w)
	s.log.Info("migration started", "migration", run.view.ID, "workload", w.ID, "name", w.Name,
		"from", w.Node, "to", target, "mode", resolved, "why", why)
	go s.driveMigration(agents, run, actions)
	return run.view, nil
}

// maxMigrationHistory bounds the finished migrations kept for the API.
const maxMigrationHistory = 200

func (s *Server) trimMigrationsLocked() {
	for len(s.migrationOrder) > maxMigrationHistory {
		id := s.migrationOrder[0]
		if r := s.migrations[id]; r != nil && !migrate.Phase(r.view.State).Final() {
			break
		}
		delete(s.migrations, id)
		s.migrationOrder = s.migrationOrder[1:]
		if s.cfg.MigrationStore != nil {
			ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
			if err := s.cfg.MigrationStore.DeleteMigration(ctx, id); err != nil {
				s.log.Warn("forgetting an old migration", "migration", id, "err", err)
			}
			cancel()
		}
	}
}

// findLocked finds a workload by id or, failing that, by name.
func (s *Server) findLocked(idOrName string) (store.Workload, error) {
	if w, ok := s.workloads[idOrName]; ok {
		return w, nil
	}
	for _, w := range s.workloads {
		if w.Name == idOrName && w.Desired == store.DesiredRunning {
			return w, nil
		}
	}
	return store.Workload{}, fmt.Errorf("%w: workload %q", ErrNotFound, idOrName)
}

// driveMigration carries out the machine's actions one by one, feeding each
// outcome back as an event, until the migration ends.
func (s *Server) driveMigration(agents MigrationAgents, run *migrationRun, queue []migrate.Action) {
	for len(queue) > 0 {
		a := queue[0]
		queue = queue[1:]
		ev := s.carryOutMigration(agents, run, a)
		s.mu.Lock()
		queue = append(queue, run.mach.Step(ev)...)
		s.updateViewLocked(run)
		// Saved before the next action is carried out: a driver that
		// resumes from the store never finds an earlier phase than the
		// one whose operations may have reached the agents.
		s.saveMigrationLocked(run)
		s.mu.Unlock()
	}
	s.finishMigration(run)
}

func (s *Server) migrateOp(agents MigrationAgents, node, op string, cmd wire.MigrationCmd) (wire.MigrationReply, error) {
	ctx, cancel := context.WithTimeout(context.Background(), migrationOpTimeout[op])
	defer cancel()
	return agents.Migrate(ctx, node, op, cmd)
}

// carryOutMigration performs one action and returns the event it produced.
func (s *Server) carryOutMigration(agents MigrationAgents, run *migrationRun, a migrate.Action) migrate.Event {
	failed := func(err error) migrate.Event {
		return migrate.Event{Kind: migrate.EvFailed, At: s.cfg.Clock.Now(), Reason: err.Error()}
	}
	v := run.view
	s.log.Debug("migration step", "migration", v.ID, "action", a.String())
	switch a.Kind {
	case migrate.ActPrepareTarget:
		r, err := s.migrateOp(agents, v.Target, wire.OpMigratePrepare, run.cmd)
		if err != nil {
			return failed(err)
		}
		run.cmd.PageServer = r.PageServer
		return migrate.Event{Kind: migrate.EvTargetPrepared, At: s.cfg.Clock.Now()}
	case migrate.ActDump:
		r, err := s.migrateOp(agents, v.Source, wire.OpMigrateDump, run.cmd)
		if err != nil {
			return failed(err)
		}
		run.cmd.SourceLog, run.cmd.SourceWorkdir = r.SourceLog, r.SourceWorkdir
		if a.Lazy {
			// Post-copy: the source serves the pages; the target's
			// lazy-pages daemon connects to it.
			run.cmd.PageServer = r.PageServer
		}
		return migrate.Event{Kind: migrate.EvDumped, At: s.cfg.Clock.Now(), Bytes: r.Bytes}
	case migrate.ActSendImages:
		r, err := s.migrateOp(agents, v.Source, wire.OpMigrateSendImages, run.cmd)
		if err != nil {
			return failed(err)
		}
		return migrate.Event{Kind: migrate.EvTransferred, At: s.cfg.Clock.Now(), Bytes: r.Bytes}
	case migrate.ActRestore:
		r, err := s.migrateOp(agents, v.Target, wire.OpMigrateRestore, run.cmd)
		if err != nil {
			return failed(err)
		}
		return migrate.Event{Kind: migrate.EvRestored, At: s.cfg.Clock.Now(), PID: r.PID}
	case migrate.ActWaitPages:
		r, err := s.migrateOp(agents, v.Target, wire.OpMigrateWaitPages, run.cmd)
		if err != nil {
			return failed(err)
		}
		return migrate.Event{Kind: migrate.EvPagesDone, At: s.cfg.Clock.Now(), Bytes: r.Bytes}
	case migrate.ActCommit:
		s.backoff(run)
		for _, side := range []struct{ node, role string }{{v.Source, wire.RoleSource}, {v.Target, wire.RoleTarget}} {
			cmd := run.cmd
			cmd.Role = side.role
			if _, err := s.migrateOp(agents, side.node, wire.OpMigrateCommit, cmd); err != nil {
				return failed(err)
			}
		}
		return migrate.Event{Kind: migrate.EvCommitted, At: s.cfg.Clock.Now()}
	case migrate.ActAbort:
		s.backoff(run)
		// The target copy must be gone before the source runs again. A
		// target that never restored still gets a best-effort abort so it
		// drops its page server and images.
		tcmd := run.cmd
		tcmd.Role, tcmd.KillTarget = wire.RoleTarget, a.KillTarget
		if _, err := s.migrateOp(agents, v.Target, wire.OpMigrateAbort, tcmd); err != nil && a.KillTarget {
			return failed(fmt.Errorf("target %s did not confirm the kill of its copy: %w", v.Target, err))
		}
		if a.ResumeSource {
			scmd := run.cmd
			scmd.Role, scmd.ResumeSource = wire.RoleSource, true
			if _, err := s.migrateOp(agents, v.Source, wire.OpMigrateAbort, scmd); err != nil {
				return failed(fmt.Errorf("source %s did not resume: %w", v.Source, err))
			}
		}
		return migrate.Event{Kind: migrate.EvAborted, At: s.cfg.Clock.Now()}
	default: // pre-dump: Resolve never picks pre-copy without dirty tracking
		return failed(fmt.Errorf("%s is not supported by Baton's agents yet", a.Kind))
	}
}

// backoff spaces out retried commits and aborts (an agent may be
// restarting): 0, 0.5, 1, 2, 4 ... 10 s.
func (s *Server) backoff(run *migrationRun) {
	run.attempts++
	if run.attempts <= 1 {
		return
	}
	d := min(time.Duration(250<<min(run.attempts-1, 6))*time.Millisecond, 10*time.Second)
	time.Sleep(d)
}

func (s *Server) updateViewLocked(run *migrationRun) {
	r := run.mach.Report()
	v := &run.view
	v.State, v.Reason, v.BytesMoved, v.TargetPID = string(r.Phase), r.Reason, r.BytesMoved, r.TargetPID
	v.FrozenMS = float64(r.Frozen) / float64(time.Millisecond)
	v.Phases = v.Phases[:0]
	if b := run.before; b != nil {
		v.Phases = append(v.Phases, b.Phases...)
		v.BytesMoved += b.BytesMoved
		if r.Frozen == 0 {
			v.FrozenMS = b.FrozenMS
		}
		if r.TargetPID == 0 {
			v.TargetPID = b.TargetPID
		}
	}
	for _, p := range r.Phases {
		v.Phases = append(v.Phases, MigrationPhaseMS{Phase: string(p.Phase), MS: float64(p.Duration) / float64(time.Millisecond)})
	}
	if !r.Ended.IsZero() {
		v.EndedAt = r.Ended
		v.TotalMS = float64(r.Ended.Sub(r.Started)) / float64(time.Millisecond)
	}
}

// finishMigration records where the workload runs now.
func (s *Server) finishMigration(run *migrationRun) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.updateViewLocked(run)
	s.saveMigrationLocked(run)
	v := run.view
	w, ok := s.workloads[v.Workload]
	if !ok {
		return
	}
	w.Migration, w.MigrationTarget, w.UpdatedAt = "", "", s.cfg.Clock.Now()
	switch migrate.Phase(v.State) {
	case migrate.PhaseDone:
		w.Node, w.HostPID, w.State, w.Error = v.Target, v.TargetPID, wire.StateRunning, ""
	default:
		w.State = wire.StateRunning // rolled back: the source runs again
	}
	s.saveLocked(context.Background(), w)
	s.log.Info("migration ended", "migration", v.ID, "workload", v.Workload, "state", v.State,
		"frozen_ms", v.FrozenMS, "reason", v.Reason)
}

// Migrations lists the migrations this server drove, oldest first.
func (s *Server) Migrations() []MigrationView {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]MigrationView, 0, len(s.migrationOrder))
	for _, id := range s.migrationOrder {
		out = append(out, s.migrations[id].view)
	}
	return out
}

// Migration returns one migration.
func (s *Server) Migration(id string) (MigrationView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.migrations[id]
	if !ok {
		return MigrationView{}, fmt.Errorf("%w: migration %q", ErrNotFound, id)
	}
	return r.view, nil
}

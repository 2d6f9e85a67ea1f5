package migration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/batonhq/baton/migrate/criu"
	"github.com/batonhq/baton/nodeagent/runner"
	"github.com/batonhq/baton/wire"
)

// Sentinel errors; check them with errors.Is. Their text reaches the server
// in CommandReply.Error.
var (
	// ErrNoCRIU: this node cannot migrate (no working CRIU 4.x).
	ErrNoCRIU = errors.New("migration: CRIU is not available")
	// ErrUnknown: this node has no record of the migration (never
	// prepared or dumped here, or cleaned up after an abort).
	ErrUnknown = errors.New("migration: unknown migration")
	// ErrWrongPhase: the operation does not fit the migration's phase on
	// this node (a restore before prepare, an abort after commit, ...).
	ErrWrongPhase = errors.New("migration: operation out of order")
	// ErrWrongNode: the command names another node for this role.
	ErrWrongNode = errors.New("migration: command for another node")
	// ErrMode: the migration mode is not one this agent carries out.
	ErrMode = errors.New("migration: mode not supported by this agent")
	// ErrFailed: an earlier attempt of this operation failed; the error
	// carries its reason. The migration must be aborted.
	ErrFailed = errors.New("migration: operation failed earlier")
)

// Phases of a migration on one agent, persisted.
const (
	phasePrepared  = "prepared"   // target: images dir, cgroups, page server
	phaseDumping   = "dumping"    // source: freezing and dumping
	phaseDumped    = "dumped"     // source: frozen, dumped
	phaseSent      = "sent"       // source: images sent
	phaseRestoring = "restoring"  // target: CRIU restore running
	phaseRestored  = "restored"   // target: restored and adopted (post-copy: pages still arriving)
	phasePagesDone = "pages-done" // target, post-copy: every page arrived
	phaseCommitted = "committed"  // both: done; tombstone
	phaseAborted   = "aborted"    // both: rolled back; tombstone
)

// record is a migration as this agent persists it.
type record struct {
	ID       string            `json:"id"`
	Role     string            `json:"role"`
	Workload wire.WorkloadSpec `json:"workload"`
	Source   string            `json:"source"`
	Target   string            `json:"target"`
	Phase    string            `json:"phase"`
	// Failed is the error of the operation that failed (dump, restore):
	// retries answer it.
	Failed string               `json:"failed,omitempty"`
	Dump   *wire.MigrationReply `json:"dump,omitempty"`
	Sent   int64                `json:"sent,omitempty"`
	PID    int                  `json:"pid,omitempty"`
	Page   string               `json:"page_server,omitempty"`
	// Mode is the migration's mode (stop-copy, post-copy).
	Mode string `json:"mode,omitempty"`
	// PagesBytes: target, post-copy: the bytes of pages the lazy-pages
	// daemon transferred (wait-pages' answer).
	PagesBytes int64 `json:"pages_bytes,omitempty"`
}

const modePostCopy = "post-copy"

func (r *record) postCopy() bool { return r.Mode == modePostCopy }

// mig is one migration on this agent. op serialises its operations; rec is
// guarded by op. cancel (guarded by Manager.mu) cancels the op in flight.
type mig struct {
	op     sync.Mutex
	rec    record
	stopPS func() error // target: the page server, nil if none runs
	// target: the restore's criu process, started at prepare so that its
	// start and cgroup attach are not frozen time (in memory only: after
	// an agent restart the restore starts its own). Guarded by op.
	restoreProc RestoreProcess
	cancel      context.CancelFunc
	// Post-copy, in memory only (an agent restart loses them; see New):
	lazySrc LazySource // source: the dump serving the frozen source's pages
	lazyDst LazyTarget // target: the lazy-pages daemon filling the copy's memory
}

// Checkpointer is the CRIU this package drives; *criu.Client is the real
// one (see Detect), fakeCRIU in the tests its in-memory twin.
type Checkpointer interface {
	PageServer(ctx context.Context, imagesDir, addr string) (stop func() error, port int, err error)
	Dump(ctx context.Context, o criu.DumpOpts) (criu.DumpResult, error)
	// Restore restores with p, the criu process StartRestore started
	// ahead (nil: Restore starts its own), and ends p whatever happens.
	Restore(ctx context.Context, o criu.RestoreOpts, p RestoreProcess) (criu.RestoreResult, error)
	// StartRestore starts the criu process of a later Restore ahead of
	// time, in o.Cgroups and with o.Log.
	StartRestore(ctx context.Context, o criu.RestoreOpts) (RestoreProcess, error)
	// Post-copy (see criu.Client.LazyDump and LazyPages).
	LazyDump(ctx context.Context, o criu.DumpOpts) (LazySource, error)
	LazyPages(ctx context.Context, imagesDir, pageServer string) (LazyTarget, error)
}

// RestoreProcess is a restore's criu process started ahead
// (*criu.RestoreProcess). Close ends it if no restore took it.
type RestoreProcess interface{ Close() }

// LazySource is a post-copy dump serving the frozen source's pages
// (*criu.LazyDumpRun).
type LazySource interface {
	Address() string
	Done() <-chan struct{}
	Wait(ctx context.Context) (criu.DumpResult, error)
	Kill()
}

// LazyTarget is the target's lazy-pages daemon (*criu.LazyPagesDaemon).
type LazyTarget interface {
	Wait(ctx context.Context, stall time.Duration) (int64, error)
	Kill()
	PID() int
	LastProgress() time.Time // when it last did anything
}

// Real wraps CRIU's client as a Checkpointer; nil gives nil (no CRIU).
func Real(c *criu.Client) Checkpointer {
	if c == nil {
		return nil
	}
	return realCRIU{c}
}

type realCRIU struct{ *criu.Client }

func (r realCRIU) StartRestore(ctx context.Context, o criu.RestoreOpts) (RestoreProcess, error) {
	p, err := r.Client.StartRestore(ctx, o)
	if err != nil {
		return nil, err // not a typed nil inside the interface
	}
	return p, nil
}

func (r realCRIU) Restore(ctx context.Context, o criu.RestoreOpts, p RestoreProcess) (criu.RestoreResult, error) {
	if p != nil {
		rp, ok := p.(*criu.RestoreProcess)
		if !ok {
			p.Close()
			return criu.RestoreResult{}, fmt.Errorf("restore: a %T is no criu process", p)
		}
		o.Process = rp
	}
	return r.Client.Restore(ctx, o)
}

func (r realCRIU) LazyDump(ctx context.Context, o criu.DumpOpts) (LazySource, error) {
	run, err := r.Client.LazyDump(ctx, o)
	if err != nil {
		return nil, err
	}
	return lazyRun{run}, nil
}

func (r realCRIU) LazyPages(ctx context.Context, imagesDir, pageServer string) (LazyTarget, error) {
	d, err := r.Client.LazyPages(ctx, imagesDir, pageServer)
	if err != nil {
		return nil, err
	}
	return d, nil
}

type lazyRun struct{ *criu.LazyDumpRun }

func (l lazyRun) Address() string { return l.Addr }

// Workloads is the runner's part in migrations; *runner.Runner is the real
// one (see its migrate.go), fakeRunner in the tests its in-memory twin.
type Workloads interface {
	LogPath(id string) string
	Workdir(spec wire.WorkloadSpec) string
	CgroupPath(id string) string
	// source
	Freeze(ctx context.Context, id, migration string) (runner.Frozen, error)
	Thaw(ctx context.Context, id, migration string) (wire.WorkloadStatus, error)
	Handoff(ctx context.Context, id string) error
	Continue(ctx context.Context, id string) error // SIGCONT (post-copy leaves the source stopped)
	// target
	PrepareCgroups(spec wire.WorkloadSpec) (string, error)
	Adopt(ctx context.Context, spec wire.WorkloadSpec, pid int) (wire.WorkloadStatus, error)
	Discard(ctx context.Context, id string) error
}

// Config configures a Manager.
type Config struct {
	Node    string
	DataDir string
	Runner  Workloads
	Conn    *nats.Conn   // send-images sends its chunks on it
	CRIU    Checkpointer // nil: migrations are refused with ErrNoCRIU
	// Features is what the agent detected (see Detect).
	Features wire.NodeFeatures
	// MigrateAddr is the host page servers listen on (default 127.0.0.1).
	MigrateAddr  string
	ChunkTimeout time.Duration // per chunk acknowledgement; default 30 s
	// PageStall: post-copy, target: a lazy-pages daemon that makes no
	// progress for this long counts as cut off from the source; its copy is
	// killed at once (default DefaultPageStall).
	PageStall time.Duration
	// DumpEndWait: post-copy, source: how long an abort waits for the dump
	// to end on its own (it does once the target's daemon is gone) before
	// it kills it; default 5 s.
	DumpEndWait time.Duration
	// FailRestoreFor names workloads (by id or name) whose next restore on this
	// node fails on purpose, after CRIU has really restored them: a fault
	// injection for tests of the rollback (baton agent
	// --inject-restore-failure). Never set it in production.
	FailRestoreFor map[string]bool
	// Alive says whether a host PID runs; default: /proc (tests of the
	// fakes replace it).
	Alive  func(pid int) bool
	Logger *slog.Logger
}

// Manager handles the migration operations of one agent. Its methods are
// safe for concurrent use.
type Manager struct {
	cfg  Config
	log  *slog.Logger
	dir  string // <DataDir>/migrations
	mu   sync.Mutex
	migs map[string]*mig
}

// New loads the migrations recorded in cfg.DataDir (after an agent restart)
// and returns the Manager. A source frozen by a migration stays frozen (the
// runner re-adopts it as migrating) until the server commits or aborts.
func New(cfg Config) (*Manager, error) {
	if cfg.MigrateAddr == "" {
		cfg.MigrateAddr = "127.0.0.1"
	}
	if cfg.ChunkTimeout <= 0 {
		cfg.ChunkTimeout = 30 * time.Second
	}
	if cfg.Alive == nil {
		cfg.Alive = unixAlive
	}
	if cfg.DumpEndWait <= 0 {
		cfg.DumpEndWait = 5 * time.Second
	}
	if cfg.PageStall <= 0 {
		cfg.PageStall = DefaultPageStall
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if c, ok := cfg.CRIU.(realCRIU); ok && c.Client == nil {
		cfg.CRIU = nil
	}
	m := &Manager{cfg: cfg, log: cfg.Logger, dir: filepath.Join(cfg.DataDir, "migrations"), migs: map[string]*mig{}}
	if err := os.MkdirAll(m.dir, 0o700); err != nil {
		return nil, fmt.Errorf("migration: %w", err)
	}
	ents, err := os.ReadDir(m.dir)
	if err != nil {
		return nil, fmt.Errorf("migration: %w", err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(m.dir, e.Name(), "migration.json"))
		if err != nil {
			continue
		}
		var rec record
		if err := json.Unmarshal(b, &rec); err != nil || rec.ID != e.Name() {
			m.log.Warn("ignoring unreadable migration record", "dir", e.Name(), "err", err)
			continue
		}
		g := &mig{rec: rec}
		m.migs[rec.ID] = g
		if rec.Phase != phaseCommitted && rec.Phase != phaseAborted {
			m.log.Info("migration in progress at start", "migration", rec.ID, "role", rec.Role, "phase", rec.Phase, "workload", rec.Workload.ID)
		}
		if rec.Role == wire.RoleTarget && rec.postCopy() && (rec.Phase == phaseRestoring || rec.Phase == phaseRestored) && rec.Failed == "" {
			// The lazy-pages daemon died with this agent: the copy runs
			// on a memory that will never be complete. Kill it now; the
			// server's abort then resumes the frozen source.
			m.dropLazyCopy(g, "the agent restarted during the lazy page transfer (the lazy-pages daemon died with it)")
		}
		if rec.Role == wire.RoleSource && rec.postCopy() && (rec.Phase == phaseDumped || rec.Phase == phaseSent) && rec.Failed == "" {
			// The lazy dump died with the agent, and with it CRIU's hold on
			// the source: the source runs again while the target's copy
			// may still run. Freeze it back at once; the server's commit
			// or abort decides which copy stays.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if _, err := cfg.Runner.Freeze(ctx, rec.Workload.ID, rec.ID); err != nil {
				m.log.Error("re-freezing a post-copy source after a restart", "migration", rec.ID, "workload", rec.Workload.ID, "err", err)
			} else {
				m.log.Warn("re-froze a post-copy source whose dump died with the agent", "migration", rec.ID, "workload", rec.Workload.ID)
			}
			cancel()
		}
	}
	return m, nil
}

// Close stops the page servers this Manager started. It does not touch
// frozen or restored workloads.
func (m *Manager) Close() {
	m.mu.Lock()
	migs := make([]*mig, 0, len(m.migs))
	for _, g := range m.migs {
		if g.cancel != nil {
			g.cancel()
		}
		migs = append(migs, g)
	}
	m.mu.Unlock()
	// Each migration's op lock guards its page server and criu process;
	// the cancelled ops let go of it soon.
	for _, g := range migs {
		g.op.Lock()
		if g.stopPS != nil {
			g.stopPS()
			g.stopPS = nil
		}
		g.closeRestoreProcess()
		g.op.Unlock()
	}
}

// HostID identifies this machine and boot: a hash of /etc/machine-id and
// /proc/sys/kernel/random/boot_id (see wire.NodeFeatures.HostID).
func HostID() string {
	mid, _ := os.ReadFile("/etc/machine-id")
	bid, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	sum := sha256.Sum256([]byte(strings.TrimSpace(string(mid)) + "/" + strings.TrimSpace(string(bid))))
	return hex.EncodeToString(sum[:12])
}

// DefaultPageStall is Config.PageStall's default.
const DefaultPageStall = 10 * time.Second

// dropLazyCopy kills a post-copy target's copy whose memory cannot be
// completed any more, and records why (wait-pages and restore then answer
// it). g.op must be held, or g not yet shared.
func (m *Manager) dropLazyCopy(g *mig, why string) {
	if g.lazyDst != nil {
		g.lazyDst.Kill()
		g.lazyDst = nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := fmt.Errorf("migration %s of workload %q on %s: %s: its copy was killed", g.rec.ID, g.rec.Workload.ID, m.cfg.Node, why)
	if derr := m.cfg.Runner.Discard(ctx, g.rec.Workload.ID); derr != nil {
		err = fmt.Errorf("%w; and removing it failed: %v", err, derr)
	}
	g.rec.Failed = err.Error()
	if serr := m.save(g); serr != nil {
		m.log.Error("saving migration", "migration", g.rec.ID, "err", serr)
	}
	m.log.Warn("post-copy copy dropped", "migration", g.rec.ID, "workload", g.rec.Workload.ID, "why", why)
}

// MinCRIUVersion is the oldest CRIU that works on Baton's kernels (3.17
// fails on the newer vDSO layout).
const MinCRIUVersion = 40000

// Detect finds out what this node can do for migrations. It never fails: a
// missing or too old CRIU gives Features.CRIU false and a nil client, and
// the reason.
func Detect(ctx context.Context, criuPath, migrateAddr string) (wire.NodeFeatures, *criu.Client, string) {
	if migrateAddr == "" {
		migrateAddr = "127.0.0.1"
	}
	f := wire.NodeFeatures{HostID: HostID(), MigrateAddr: migrateAddr}
	c := criu.New(criuPath)
	v, err := c.Version(ctx)
	if err != nil {
		return f, nil, err.Error()
	}
	f.CRIUVersion = fmt.Sprintf("%d.%d.%d", v/10000, v/100%100, v%100)
	if v < MinCRIUVersion {
		return f, nil, fmt.Sprintf("CRIU %s is too old (need 4.0 or later)", f.CRIUVersion)
	}
	// Lazy pages need a large fs.pipe-max-size on a post-copy source (see
	// migrate/POSTCOPY.md); Features reports LazyPages only if it is.
	pipeWhy := ""
	if _, err := criu.EnsurePipeMaxSize(); err != nil {
		pipeWhy = err.Error()
	}
	feats, err := c.Features(ctx)
	if err != nil {
		return f, nil, err.Error()
	}
	if !feats.LazyPages && feats.UFFD && pipeWhy != "" {
		f.LazyPagesWhyNot = pipeWhy
	}
	f.CRIU = true
	f.MemDirtyTrack = feats.MemDirtyTrack
	f.LazyPages = feats.LazyPages
	f.UFFD = feats.UFFD
	return f, c, ""
}

// Handle carries out one migration command (every op but receive, see
// Receive) and returns its reply.
func (m *Manager) Handle(ctx context.Context, cmd wire.Command) (*wire.MigrationReply, error) {
	if cmd.Op == wire.OpMigrateReceive {
		return m.Receive(ctx, cmd.Chunk)
	}
	mc := cmd.Migration
	if mc == nil {
		return nil, fmt.Errorf("command %s: %w", cmd.Op, wire.ErrMalformed)
	}
	if m.cfg.CRIU == nil && cmd.Op != wire.OpMigrateAbort && cmd.Op != wire.OpMigrateCommit {
		return nil, fmt.Errorf("%w on node %s: run make deps (it installs CRIU 4.x): migration %s cannot %s", ErrNoCRIU, m.cfg.Node, mc.ID, cmd.Op)
	}
	if cmd.Op != wire.OpMigrateAbort && cmd.Op != wire.OpMigrateCommit {
		if err := m.modeOK(mc, cmd.Op); err != nil {
			return nil, err
		}
	}
	role := mc.Role
	switch cmd.Op {
	case wire.OpMigratePrepare, wire.OpMigrateRestore, wire.OpMigrateWaitPages:
		role = wire.RoleTarget
	case wire.OpMigrateDump, wire.OpMigrateSendImages:
		role = wire.RoleSource
	}
	if want := map[string]string{wire.RoleSource: mc.Source, wire.RoleTarget: mc.Target}[role]; want != m.cfg.Node {
		return nil, fmt.Errorf("%w: migration %s: %s is for %s %s, this is %s", ErrWrongNode, mc.ID, cmd.Op, role, want, m.cfg.Node)
	}
	start := time.Now()
	var rep *wire.MigrationReply
	var err error
	switch cmd.Op {
	case wire.OpMigratePrepare:
		rep, err = m.prepare(ctx, mc)
	case wire.OpMigrateDump:
		rep, err = m.dump(ctx, mc)
	case wire.OpMigrateSendImages:
		rep, err = m.sendImages(ctx, mc, cmd.Epoch)
	case wire.OpMigrateRestore:
		rep, err = m.restore(ctx, mc)
	case wire.OpMigrateWaitPages:
		rep, err = m.waitPages(ctx, mc)
	case wire.OpMigrateCommit:
		rep, err = m.commit(ctx, mc)
	case wire.OpMigrateAbort:
		rep, err = m.abort(ctx, mc)
	default:
		return nil, fmt.Errorf("command %s: %w: not a migration op", cmd.Op, wire.ErrMalformed)
	}
	if rep != nil && rep.Took == 0 {
		rep.Took = time.Since(start)
	}
	return rep, err
}

// modeOK refuses a mode this node cannot carry out, saying why.
func (m *Manager) modeOK(mc *wire.MigrationCmd, op string) error {
	f := m.cfg.Features
	switch mc.Mode {
	case "", "stop-copy":
		return nil
	case modePostCopy:
		switch {
		case mc.Source == m.cfg.Node && !f.LazyPages:
			why := "CRIU lacks lazy-pages support here"
			if f.LazyPagesWhyNot != "" {
				why = f.LazyPagesWhyNot
			}
			return fmt.Errorf("%w: migration %s: node %s cannot serve post-copy pages: %s; use stop-copy", ErrMode, mc.ID, m.cfg.Node, why)
		case mc.Target == m.cfg.Node && !(f.UFFD && f.LazyPages):
			return fmt.Errorf("%w: migration %s: node %s cannot restore with lazy pages (userfaultfd or CRIU lazy-pages missing); use stop-copy", ErrMode, mc.ID, m.cfg.Node)
		}
		return nil
	case "pre-copy":
		return fmt.Errorf("%w: migration %s: pre-copy on node %s: the agents do not carry out pre-dump rounds (no soft-dirty tracking on Baton's kernels); use stop-copy or post-copy", ErrMode, mc.ID, m.cfg.Node)
	}
	return fmt.Errorf("%w: migration %s: unknown mode %q", ErrMode, mc.ID, mc.Mode)
}

// begin returns migration mc.ID locked for an operation with a context that
// an abort cancels. create makes a new record for role if none exists.
func (m *Manager) begin(ctx context.Context, id string, create *record) (*mig, context.Context, func(), error) {
	m.mu.Lock()
	g := m.migs[id]
	if g == nil {
		if create == nil {
			m.mu.Unlock()
			return nil, nil, nil, fmt.Errorf("%w: %s on node %s", ErrUnknown, id, m.cfg.Node)
		}
		g = &mig{rec: *create}
		m.migs[id] = g
	}
	m.mu.Unlock()
	g.op.Lock()
	octx, cancel := context.WithCancel(ctx)
	m.mu.Lock()
	g.cancel = cancel
	m.mu.Unlock()
	end := func() {
		m.mu.Lock()
		g.cancel = nil
		m.mu.Unlock()
		cancel()
		g.op.Unlock()
	}
	return g, octx, end, nil
}

func (m *Manager) migDir(id string) string    { return filepath.Join(m.dir, id) }
func (m *Manager) imagesDir(id string) string { return filepath.Join(m.dir, id, "images") }

// save persists g.rec (atomically). g.op must be held.
func (m *Manager) save(g *mig) error {
	dir := m.migDir(g.rec.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("migration %s: %w", g.rec.ID, err)
	}
	b, _ := json.MarshalIndent(g.rec, "", "  ")
	tmp := filepath.Join(dir, ".migration.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("migration %s: save: %w", g.rec.ID, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "migration.json")); err != nil {
		return fmt.Errorf("migration %s: save: %w", g.rec.ID, err)
	}
	return nil
}

func newRecord(mc *wire.MigrationCmd, role string) *record {
	return &record{ID: mc.ID, Role: role, Workload: mc.Workload, Source: mc.Source, Target: mc.Target, Mode: mc.Mode}
}

func checkRole(g *mig, mc *wire.MigrationCmd, role string) error {
	if g.rec.Role != role {
		return fmt.Errorf("%w: migration %s is a %s here, not a %s", ErrWrongPhase, mc.ID, g.rec.Role, role)
	}
	if g.rec.Workload.ID != mc.Workload.ID {
		return fmt.Errorf("%w: migration %s moves workload %q, not %q", ErrWrongPhase, mc.ID, g.rec.Workload.ID, mc.Workload.ID)
	}
	return nil
}

func failedErr(g *mig) error {
	return fmt.Errorf("%w: migration %s (%s): %s", ErrFailed, g.rec.ID, g.rec.Phase, g.rec.Failed)
}

// prepare (target): images dir, the workload's cgroups with its limits, a
// CRIU page server. A retry returns the same page server (or starts a new
// one if the agent restarted before any dump).
func (m *Manager) prepare(ctx context.Context, mc *wire.MigrationCmd) (*wire.MigrationReply, error) {
	g, ctx, end, err := m.begin(ctx, mc.ID, newRecord(mc, wire.RoleTarget))
	if err != nil {
		return nil, err
	}
	defer end()
	if err := checkRole(g, mc, wire.RoleTarget); err != nil {
		return nil, err
	}
	switch g.rec.Phase {
	case "":
	case phasePrepared:
		if g.stopPS != nil || g.rec.postCopy() {
			return &wire.MigrationReply{PageServer: g.rec.Page, HostID: m.cfg.Features.HostID}, nil
		}
	default:
		return nil, fmt.Errorf("%w: prepare of migration %s, which is %s here", ErrWrongPhase, mc.ID, g.rec.Phase)
	}
	r := m.cfg.Runner
	if _, err := r.PrepareCgroups(mc.Workload); err != nil {
		return nil, fmt.Errorf("prepare migration %s on %s: %w", mc.ID, m.cfg.Node, err)
	}
	images := m.imagesDir(mc.ID)
	if err := os.MkdirAll(images, 0o700); err != nil {
		return nil, fmt.Errorf("prepare migration %s: %w", mc.ID, err)
	}
	g.rec.Phase = phasePrepared
	if err := m.save(g); err != nil {
		return nil, err
	}
	m.startRestoreProcess(ctx, g, mc)
	if g.rec.postCopy() {
		// The pages stay on the source, which serves them after the
		// restore: no page server here.
		m.log.Info("migration prepared", "migration", mc.ID, "workload", mc.Workload.ID, "mode", mc.Mode)
		return &wire.MigrationReply{HostID: m.cfg.Features.HostID}, nil
	}
	stop, port, err := m.cfg.CRIU.PageServer(ctx, images, net.JoinHostPort(m.cfg.MigrateAddr, "0"))
	if err != nil {
		return nil, fmt.Errorf("prepare migration %s on %s: %w", mc.ID, m.cfg.Node, err)
	}
	g.stopPS = stop
	g.rec.Page = net.JoinHostPort(m.cfg.MigrateAddr, fmt.Sprint(port))
	if err := m.save(g); err != nil {
		return nil, err
	}
	m.log.Info("migration prepared", "migration", mc.ID, "workload", mc.Workload.ID, "page_server", g.rec.Page)
	return &wire.MigrationReply{PageServer: g.rec.Page, HostID: m.cfg.Features.HostID}, nil
}

// startRestoreProcess starts the restore's criu process now, in the
// workload's cgroups here and with its log, so that the restore, which comes
// while the source is frozen, needs neither. Without it the restore starts
// its own: a failure here only costs that time.
func (m *Manager) startRestoreProcess(ctx context.Context, g *mig, mc *wire.MigrationCmd) {
	if g.restoreProc != nil {
		return
	}
	r := m.cfg.Runner
	logf, err := os.OpenFile(r.LogPath(mc.Workload.ID), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		m.log.Warn("starting the restore's criu process ahead", "migration", mc.ID, "err", err)
		return
	}
	defer logf.Close() // the criu process has its own copy
	p, err := m.cfg.CRIU.StartRestore(ctx, criu.RestoreOpts{Cgroups: criu.CgroupRoots(r.CgroupPath(mc.Workload.ID)), Log: logf})
	if err != nil {
		m.log.Warn("starting the restore's criu process ahead", "migration", mc.ID, "err", err)
		return
	}
	g.restoreProc = p
}

// closeRestoreProcess ends a restore's criu process that no restore took.
func (g *mig) closeRestoreProcess() {
	if g.restoreProc != nil {
		g.restoreProc.Close()
		g.restoreProc = nil
	}
}

// dump (source): freeze the workload, dump it with its pages streamed to the
// target's page server; it stays frozen. A failed dump thaws the workload at
// once (without the other images no restore is possible) and is final.
func (m *Manager) dump(ctx context.Context, mc *wire.MigrationCmd) (*wire.MigrationReply, error) {
	g, ctx, end, err := m.begin(ctx, mc.ID, newRecord(mc, wire.RoleSource))
	if err != nil {
		return nil, err
	}
	defer end()
	if err := checkRole(g, mc, wire.RoleSource); err != nil {
		return nil, err
	}
	switch {
	case g.rec.Failed != "":
		return nil, failedErr(g)
	case g.rec.Dump != nil && (g.rec.Phase == phaseDumped || g.rec.Phase == phaseSent):
		rep := *g.rec.Dump
		return &rep, nil
	case g.rec.Phase != "" && g.rec.Phase != phaseDumping:
		return nil, fmt.Errorf("%w: dump of migration %s, which is %s here", ErrWrongPhase, mc.ID, g.rec.Phase)
	}
	start := time.Now()
	g.rec.Phase = phaseDumping
	if err := m.save(g); err != nil {
		return nil, err
	}
	fail := func(err error) (*wire.MigrationReply, error) {
		err = fmt.Errorf("dump migration %s of workload %q on %s: %w", mc.ID, mc.Workload.ID, m.cfg.Node, err)
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, terr := m.cfg.Runner.Thaw(tctx, mc.Workload.ID, mc.ID); terr != nil && !errors.Is(terr, runner.ErrUnknownWorkload) {
			err = fmt.Errorf("%w; and resuming it failed: %v", err, terr)
		} else if g.rec.postCopy() {
			if cerr := m.cfg.Runner.Continue(tctx, mc.Workload.ID); cerr != nil {
				err = fmt.Errorf("%w; and continuing it failed: %v", err, cerr)
			}
		}
		g.rec.Failed = err.Error()
		if serr := m.save(g); serr != nil {
			m.log.Error("saving migration", "migration", mc.ID, "err", serr)
		}
		return nil, err
	}
	fr, err := m.cfg.Runner.Freeze(ctx, mc.Workload.ID, mc.ID)
	if err != nil {
		if errors.Is(err, runner.ErrUnknownWorkload) || errors.Is(err, runner.ErrNotRunning) {
			// Nothing frozen: not final, nothing to thaw.
			g.rec.Phase = ""
			m.save(g)
			return nil, fmt.Errorf("dump migration %s on %s: %w", mc.ID, m.cfg.Node, err)
		}
		return fail(err)
	}
	rss, _ := criu.RSS(fr.PID)
	if g.rec.postCopy() {
		lazy, err := m.cfg.CRIU.LazyDump(ctx, criu.DumpOpts{
			PID: fr.PID, ImagesDir: m.imagesDir(mc.ID), PageServer: net.JoinHostPort(m.cfg.MigrateAddr, "0"),
			FreezeCgroup: fr.FreezerDir, NetworkLockSkip: true,
		})
		if err != nil {
			return fail(err)
		}
		g.lazySrc = lazy
		g.rec.Page = lazy.Address()
		g.rec.Dump = &wire.MigrationReply{
			FrozenAt: fr.FrozenAt.UTC(), RSSBytes: rss, PageServer: g.rec.Page,
			Took: time.Since(start), SourceLog: fr.Log, SourceWorkdir: fr.Workdir,
		}
		g.rec.Phase = phaseDumped
		if err := m.save(g); err != nil {
			lazy.Kill()
			g.lazySrc = nil
			return fail(err)
		}
		m.log.Info("migration dumped without memory; serving pages", "migration", mc.ID, "workload", mc.Workload.ID, "page_server", g.rec.Page, "took", g.rec.Dump.Took)
		rep := *g.rec.Dump
		return &rep, nil
	}
	res, err := m.cfg.CRIU.Dump(ctx, criu.DumpOpts{
		PID: fr.PID, ImagesDir: m.imagesDir(mc.ID), PageServer: mc.PageServer,
		LeaveRunning: true, FreezeCgroup: fr.FreezerDir,
		// Workloads share the host's network namespace and Baton does not
		// move TCP connections: there is nothing to lock.
		NetworkLockSkip: true,
	})
	if err != nil {
		return fail(err)
	}
	g.rec.Dump = &wire.MigrationReply{
		FrozenAt: fr.FrozenAt.UTC(), Bytes: int64(res.PagesWritten) * int64(os.Getpagesize()), RSSBytes: rss,
		Took: time.Since(start), SourceLog: fr.Log, SourceWorkdir: fr.Workdir,
	}
	g.rec.Phase = phaseDumped
	if err := m.save(g); err != nil {
		return fail(err)
	}
	m.log.Info("migration dumped", "migration", mc.ID, "workload", mc.Workload.ID, "bytes", g.rec.Dump.Bytes, "took", g.rec.Dump.Took)
	rep := *g.rec.Dump
	return &rep, nil
}

// sendImages (source): every image file to the target in acknowledged
// chunks; across machines also the workdir tree and the log.
func (m *Manager) sendImages(ctx context.Context, mc *wire.MigrationCmd, epoch uint64) (*wire.MigrationReply, error) {
	g, ctx, end, err := m.begin(ctx, mc.ID, nil)
	if err != nil {
		return nil, err
	}
	defer end()
	if err := checkRole(g, mc, wire.RoleSource); err != nil {
		return nil, err
	}
	switch {
	case g.rec.Failed != "":
		return nil, failedErr(g)
	case g.rec.Phase == phaseSent:
		return &wire.MigrationReply{Bytes: g.rec.Sent}, nil
	case g.rec.Phase != phaseDumped:
		return nil, fmt.Errorf("%w: send-images of migration %s, which is %s here (dump first)", ErrWrongPhase, mc.ID, g.rec.Phase)
	}
	files, err := imageFiles(m.imagesDir(mc.ID))
	if err != nil {
		return nil, fmt.Errorf("send-images of migration %s: %w", mc.ID, err)
	}
	targetHost := ""
	send := func(c *wire.FileChunk) error {
		cmd := wire.Command{V: wire.Version, Epoch: epoch, Op: wire.OpMigrateReceive, Chunk: c}
		var last error
		for attempt := 0; attempt < 3; attempt++ {
			rctx, cancel := context.WithTimeout(ctx, m.cfg.ChunkTimeout)
			msg, err := m.cfg.Conn.RequestWithContext(rctx, wire.SubjectCommand(mc.Target), wire.Encode(cmd))
			cancel()
			if err != nil {
				last = err
				if ctx.Err() != nil {
					break
				}
				continue // receive is idempotent: resend
			}
			rep, err := wire.DecodeCommandReply(msg.Data)
			if err != nil {
				return err
			}
			if rep.Error != "" {
				return fmt.Errorf("target %s: %s", mc.Target, rep.Error)
			}
			if rep.Migration != nil && rep.Migration.HostID != "" {
				targetHost = rep.Migration.HostID
			}
			return nil
		}
		return fmt.Errorf("no acknowledgement from target %s: %w", mc.Target, last)
	}
	var total int64
	sendAll := func(fs []file) error {
		for _, f := range fs {
			n, err := chunks(mc.ID, f, send)
			total += n
			if err != nil {
				return fmt.Errorf("send-images of migration %s: %s %s: %w", mc.ID, f.kind, f.rel, err)
			}
		}
		return nil
	}
	if err := sendAll(files); err != nil {
		return nil, err
	}
	if targetHost != m.cfg.Features.HostID {
		// Another machine: the workload's files are not there.
		d := g.rec.Dump
		skip := map[string]bool{d.SourceLog: true}
		extra, err := treeFiles("workdir", d.SourceWorkdir, skip)
		if err != nil {
			return nil, fmt.Errorf("send-images of migration %s: workdir: %w", mc.ID, err)
		}
		extra = append(extra, file{kind: "log", abs: d.SourceLog, rel: filepath.Base(d.SourceLog), mode: 0o644})
		if err := sendAll(extra); err != nil {
			return nil, err
		}
	}
	g.rec.Phase, g.rec.Sent = phaseSent, total
	if err := m.save(g); err != nil {
		return nil, err
	}
	m.log.Info("migration images sent", "migration", mc.ID, "target", mc.Target, "bytes", total, "same_host", targetHost == m.cfg.Features.HostID)
	return &wire.MigrationReply{Bytes: total}, nil
}

// Receive (target) writes one chunk of send-images. Image chunks go to the
// migration's images dir, workdir chunks to the workload's working dir (the
// same path as on the source), the log to the workload's log on this node.
// Writing a chunk again is harmless.
func (m *Manager) Receive(ctx context.Context, c *wire.FileChunk) (*wire.MigrationReply, error) {
	if c == nil {
		return nil, fmt.Errorf("receive: %w", wire.ErrMalformed)
	}
	g, _, end, err := m.begin(ctx, c.Migration, nil)
	if err != nil {
		return nil, err
	}
	defer end()
	if g.rec.Role != wire.RoleTarget || g.rec.Phase != phasePrepared {
		return nil, fmt.Errorf("%w: chunk %s for migration %s, which is a %s %s here", ErrWrongPhase, c.Path, c.Migration, g.rec.Phase, g.rec.Role)
	}
	r := m.cfg.Runner
	var root string
	switch c.Kind {
	case "image":
		root = m.imagesDir(c.Migration)
	case "workdir":
		root = r.Workdir(g.rec.Workload)
	case "log":
		lp := r.LogPath(g.rec.Workload.ID)
		root, c.Path = filepath.Dir(lp), filepath.Base(lp)
	default:
		return nil, fmt.Errorf("receive: %w: kind %q", wire.ErrMalformed, c.Kind)
	}
	if err := writeChunk(root, c); err != nil {
		return nil, fmt.Errorf("receive chunk of migration %s on %s: %w", c.Migration, m.cfg.Node, err)
	}
	return &wire.MigrationReply{Bytes: int64(len(c.Data)), HostID: m.cfg.Features.HostID}, nil
}

// restore (target): CRIU restore into this node's cgroups with this node's
// log, then the runner adopts it. A retry returns the same PID.
func (m *Manager) restore(ctx context.Context, mc *wire.MigrationCmd) (*wire.MigrationReply, error) {
	g, ctx, end, err := m.begin(ctx, mc.ID, nil)
	if err != nil {
		return nil, err
	}
	defer end()
	if err := checkRole(g, mc, wire.RoleTarget); err != nil {
		return nil, err
	}
	switch {
	case g.rec.Failed != "":
		return nil, failedErr(g)
	case g.rec.Phase == phaseRestored || g.rec.Phase == phasePagesDone:
		return &wire.MigrationReply{PID: g.rec.PID}, nil
	case g.rec.Phase != phasePrepared:
		// restoring: the agent restarted in the middle; only an abort
		// can tell what is left.
		return nil, fmt.Errorf("%w: restore of migration %s, which is %s here", ErrWrongPhase, mc.ID, g.rec.Phase)
	}
	if mc.SourceLog == "" {
		return nil, fmt.Errorf("restore of migration %s: %w: needs source_log from the dump's reply", mc.ID, wire.ErrMalformed)
	}
	start := time.Now()
	r := m.cfg.Runner
	id := mc.Workload.ID
	g.rec.Phase = phaseRestoring
	if err := m.save(g); err != nil {
		return nil, err
	}
	fail := func(err error) (*wire.MigrationReply, error) {
		err = fmt.Errorf("restore migration %s of workload %q on %s: %w", mc.ID, id, m.cfg.Node, err)
		g.closeRestoreProcess() // before Discard empties the cgroups it sits in
		if g.lazyDst != nil {
			g.lazyDst.Kill()
			g.lazyDst = nil
		}
		// Nothing of a failed restore may run.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if derr := r.Discard(dctx, id); derr != nil {
			err = fmt.Errorf("%w; and removing what it left failed: %v", err, derr)
		}
		g.rec.Failed = err.Error()
		if serr := m.save(g); serr != nil {
			m.log.Error("saving migration", "migration", mc.ID, "err", serr)
		}
		return nil, err
	}
	if g.stopPS != nil {
		// The page server exits after its one dump; make sure it has
		// let go of the images.
		g.stopPS()
		g.stopPS = nil
	}
	logf, err := os.OpenFile(r.LogPath(id), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fail(err)
	}
	defer logf.Close()
	path := r.CgroupPath(id)
	if g.rec.postCopy() {
		// The daemon that will fill the copy's memory from the source's
		// page server; the restore hands it the copy's userfaultfds.
		d, err := m.cfg.CRIU.LazyPages(ctx, m.imagesDir(mc.ID), mc.PageServer)
		if err != nil {
			return fail(err)
		}
		g.lazyDst = d
	}
	rctx, stalled := ctx, func() bool { return false }
	if g.lazyDst != nil {
		// A lazy restore needs pages too: with the source's page server
		// gone silent it would hang. The daemon's progress bounds it.
		rctx, stalled = m.watchStall(ctx, g.lazyDst)
	}
	res, err := m.cfg.CRIU.Restore(rctx, criu.RestoreOpts{
		ImagesDir: m.imagesDir(mc.ID), Cgroups: criu.CgroupRoots(path), Log: logf, LogKey: mc.SourceLog,
		Detach: true, LazyPages: g.rec.postCopy(),
	}, g.restoreProc)
	g.restoreProc = nil // Restore took it (and ended it)
	if stalled() {
		err = fmt.Errorf("lazy restore: the lazy-pages daemon made no progress for %s (the source's page server cut off or hung); restore killed: %v", m.cfg.PageStall, err)
	}
	if err != nil {
		return fail(err)
	}
	if m.injectedFailure(mc.Workload) {
		// Fault injection (tests only): the copy really runs, and the
		// failure goes through the same path as CRIU's own.
		return fail(fmt.Errorf("fault injected by --inject-restore-failure after CRIU restored pid %d", res.PID))
	}
	g.rec.PID = res.PID
	if _, err := r.Adopt(ctx, mc.Workload, res.PID); err != nil {
		return fail(err)
	}
	g.rec.Phase = phaseRestored
	if err := m.save(g); err != nil {
		// The workload runs and is adopted: report it anyway.
		m.log.Error("saving migration", "migration", mc.ID, "err", err)
	}
	m.log.Info("migration restored", "migration", mc.ID, "workload", id, "pid", res.PID, "took", time.Since(start))
	return &wire.MigrationReply{PID: res.PID, Took: time.Since(start)}, nil
}

// waitPages (target, post-copy): wait until the lazy-pages daemon has put
// every page into the restored copy, and the copy still runs. A transfer
// that fails or stalls kills the copy at once (it runs on a memory with
// holes); the server then aborts, which resumes the frozen source.
func (m *Manager) waitPages(ctx context.Context, mc *wire.MigrationCmd) (*wire.MigrationReply, error) {
	g, ctx, end, err := m.begin(ctx, mc.ID, nil)
	if err != nil {
		return nil, err
	}
	defer end()
	if err := checkRole(g, mc, wire.RoleTarget); err != nil {
		return nil, err
	}
	switch {
	case g.rec.Failed != "":
		return nil, failedErr(g)
	case g.rec.Phase == phasePagesDone:
		return &wire.MigrationReply{Bytes: g.rec.PagesBytes}, nil
	case !g.rec.postCopy() || g.rec.Phase != phaseRestored:
		return nil, fmt.Errorf("%w: wait-pages of migration %s, a %s migration which is %s here", ErrWrongPhase, mc.ID, g.rec.Mode, g.rec.Phase)
	case g.lazyDst == nil:
		m.dropLazyCopy(g, "no lazy-pages daemon serves the copy (the agent restarted)")
		return nil, failedErr(g)
	}
	start := time.Now()
	n, err := g.lazyDst.Wait(ctx, m.cfg.PageStall)
	if err != nil && ctx.Err() != nil {
		// Cancelled (an abort, or the agent stops): the abort kills the
		// copy; Wait already killed the daemon.
		g.lazyDst = nil
		return nil, fmt.Errorf("wait-pages of migration %s: %w", mc.ID, err)
	}
	if err == nil && !m.cfg.Alive(g.rec.PID) {
		err = fmt.Errorf("the restored copy (pid %d) is gone", g.rec.PID)
	}
	g.lazyDst = nil
	if err != nil {
		m.dropLazyCopy(g, "lazy page transfer failed: "+err.Error())
		return nil, failedErr(g)
	}
	g.rec.Phase, g.rec.PagesBytes = phasePagesDone, n
	if err := m.save(g); err != nil {
		return nil, err
	}
	m.log.Info("migration pages all arrived", "migration", mc.ID, "workload", mc.Workload.ID, "bytes", n, "took", time.Since(start))
	return &wire.MigrationReply{Bytes: n, Took: time.Since(start)}, nil
}

// injectedFailure reports (once per workload) whether Config.FailRestoreFor
// names w.
func (m *Manager) injectedFailure(w wire.WorkloadSpec) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range []string{w.ID, w.Name} {
		if k != "" && m.cfg.FailRestoreFor[k] {
			delete(m.cfg.FailRestoreFor, k)
			return true
		}
	}
	return false
}

// watchStall returns a context that ends when d has made no progress for
// PageStall (or ctx ends), and a func saying whether that is why it ended.
func (m *Manager) watchStall(ctx context.Context, d LazyTarget) (context.Context, func() bool) {
	wctx, cancel := context.WithCancel(ctx)
	var stalled atomic.Bool
	go func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-tick.C:
				if last := d.LastProgress(); !last.IsZero() && time.Since(last) > m.cfg.PageStall {
					stalled.Store(true)
					cancel()
					return
				}
			}
		}
	}()
	return wctx, func() bool { cancel(); return stalled.Load() }
}

// unixAlive reports whether pid runs (exists and is not a zombie).
func unixAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] != 'Z'
}

// endLazySource ends a post-copy source's dump: it waits up to wait for
// CRIU to end on its own (after the target's daemon has gone it does, within
// ~200 ms), then kills it. The source stays frozen either way.
func (m *Manager) endLazySource(g *mig, wait time.Duration) {
	if g.lazySrc == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	_, err := g.lazySrc.Wait(ctx)
	cancel()
	if errors.Is(err, context.DeadlineExceeded) {
		m.log.Warn("post-copy dump still serving; killing it", "migration", g.rec.ID)
	} else if err != nil {
		m.log.Info("post-copy dump ended with an error (the target's verdict decides)", "migration", g.rec.ID, "err", err)
	}
	g.lazySrc.Kill()
	g.lazySrc = nil
}

// commit: source → kill the frozen copy and forget it; target → clean up.
// Images are removed on both; the record stays as a tombstone so that a
// late abort is refused.
func (m *Manager) commit(ctx context.Context, mc *wire.MigrationCmd) (*wire.MigrationReply, error) {
	g, ctx, end, err := m.begin(ctx, mc.ID, nil)
	if err != nil {
		return nil, err
	}
	defer end()
	if err := checkRole(g, mc, mc.Role); err != nil {
		return nil, err
	}
	switch g.rec.Phase {
	case phaseCommitted:
		return &wire.MigrationReply{}, nil
	case phaseAborted:
		return nil, fmt.Errorf("%w: commit of migration %s, which was aborted here", ErrWrongPhase, mc.ID)
	}
	if g.rec.Failed != "" {
		return nil, failedErr(g)
	}
	switch mc.Role {
	case wire.RoleSource:
		if g.rec.Phase != phaseDumped && g.rec.Phase != phaseSent {
			return nil, fmt.Errorf("%w: commit of migration %s, which is %s here (nothing dumped)", ErrWrongPhase, mc.ID, g.rec.Phase)
		}
		// Post-copy: the target has every page; the dump has ended or
		// ends now.
		m.endLazySource(g, 30*time.Second)
		if err := m.cfg.Runner.Handoff(ctx, mc.Workload.ID); err != nil {
			return nil, fmt.Errorf("commit migration %s on %s: %w", mc.ID, m.cfg.Node, err)
		}
	case wire.RoleTarget:
		if g.rec.postCopy() && g.rec.Phase != phasePagesDone {
			return nil, fmt.Errorf("%w: commit of post-copy migration %s, which is %s here (not every page arrived)", ErrWrongPhase, mc.ID, g.rec.Phase)
		}
		if g.rec.Phase != phaseRestored && g.rec.Phase != phasePagesDone {
			return nil, fmt.Errorf("%w: commit of migration %s, which is %s here (not restored)", ErrWrongPhase, mc.ID, g.rec.Phase)
		}
		if g.stopPS != nil {
			g.stopPS()
			g.stopPS = nil
		}
		g.closeRestoreProcess()
	}
	if err := os.RemoveAll(m.imagesDir(mc.ID)); err != nil {
		m.log.Warn("removing migration images", "migration", mc.ID, "err", err)
	}
	g.rec.Phase = phaseCommitted
	if err := m.save(g); err != nil {
		return nil, err
	}
	m.log.Info("migration committed", "migration", mc.ID, "role", mc.Role, "workload", mc.Workload.ID)
	return &wire.MigrationReply{}, nil
}

// abort: cancel and wait out the op in flight, then target → kill any
// restored copy, remove its cgroups and record, stop the page server;
// source → thaw (ResumeSource). Images are removed. A migration unknown
// here succeeds with nothing done; one committed here is refused.
func (m *Manager) abort(ctx context.Context, mc *wire.MigrationCmd) (*wire.MigrationReply, error) {
	m.mu.Lock()
	g := m.migs[mc.ID]
	if g != nil && g.cancel != nil {
		g.cancel()
	}
	m.mu.Unlock()
	if g == nil {
		if mc.Role == wire.RoleSource && mc.ResumeSource && m.cfg.CRIU != nil {
			// No record (the dump never got here), but make sure the
			// workload is not left frozen by this migration.
			if _, err := m.cfg.Runner.Thaw(ctx, mc.Workload.ID, mc.ID); err != nil && !errors.Is(err, runner.ErrUnknownWorkload) {
				return nil, fmt.Errorf("abort migration %s on %s: %w", mc.ID, m.cfg.Node, err)
			}
		}
		return &wire.MigrationReply{}, nil
	}
	g, ctx, end, err := m.begin(ctx, mc.ID, nil)
	if err != nil {
		return nil, err
	}
	defer end()
	if err := checkRole(g, mc, mc.Role); err != nil {
		return nil, err
	}
	switch g.rec.Phase {
	case phaseCommitted:
		return nil, fmt.Errorf("%w: abort of migration %s, which committed here", ErrWrongPhase, mc.ID)
	case phaseAborted:
		return &wire.MigrationReply{}, nil
	}
	r := m.cfg.Runner
	switch mc.Role {
	case wire.RoleTarget:
		if g.stopPS != nil {
			g.stopPS()
			g.stopPS = nil
		}
		g.closeRestoreProcess()
		stopOrphanPageServer(m.imagesDir(mc.ID))
		// A restore killed in flight (an agent restart) by an agent of
		// an earlier version, which let CRIU manage cgroups, left CRIU's
		// cgroup yard mounted in the images dir (no restore mounts one now).
		if _, err := criu.UnmountYards(m.imagesDir(mc.ID)); err != nil {
			m.log.Warn("unmounting a CRIU cgroup yard", "migration", mc.ID, "err", err)
		}
		// Prepare refused a workload this runner already had, so anything
		// under its id here came from this migration.
		if err := r.Discard(ctx, mc.Workload.ID); err != nil {
			return nil, fmt.Errorf("abort migration %s on %s: %w", mc.ID, m.cfg.Node, err)
		}
		if g.lazyDst != nil {
			g.lazyDst.Kill()
			g.lazyDst = nil
		}
	case wire.RoleSource:
		// Post-copy: the server aborts the target first, so the daemon
		// is gone and the dump ends by itself; one that still serves
		// (the target never connected) is killed.
		m.endLazySource(g, m.cfg.DumpEndWait)
		if mc.ResumeSource {
			st, err := r.Thaw(ctx, mc.Workload.ID, mc.ID)
			if err != nil && !errors.Is(err, runner.ErrUnknownWorkload) {
				return nil, fmt.Errorf("abort migration %s on %s: %w", mc.ID, m.cfg.Node, err)
			}
			if g.rec.postCopy() {
				// --leave-stopped also stopped it (SIGSTOP).
				if err := r.Continue(ctx, mc.Workload.ID); err != nil {
					return nil, fmt.Errorf("abort migration %s on %s: %w", mc.ID, m.cfg.Node, err)
				}
			}
			m.log.Info("migration aborted, source resumed", "migration", mc.ID, "workload", mc.Workload.ID, "pid", st.HostPID)
		}
	}
	if err := os.RemoveAll(m.imagesDir(mc.ID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		m.log.Warn("removing migration images", "migration", mc.ID, "err", err)
	}
	g.rec.Phase = phaseAborted
	if err := m.save(g); err != nil {
		return nil, err
	}
	m.log.Info("migration aborted", "migration", mc.ID, "role", mc.Role, "workload", mc.Workload.ID)
	return &wire.MigrationReply{}, nil
}

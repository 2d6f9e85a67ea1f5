package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/batonhq/baton/migrate/criu"
	"github.com/batonhq/baton/nodeagent/metrics"
	"github.com/batonhq/baton/nodeagent/migration"
	"github.com/batonhq/baton/nodeagent/runner"
	"github.com/batonhq/baton/wire"
)

// DefaultInterval is the heartbeat interval unless Config.Interval is set.
const DefaultInterval = time.Second

// ErrAlreadyRun is returned by a second call of Agent.Run.
var ErrAlreadyRun = errors.New("nodeagent: Run called twice")

// flushTimeout bounds how long shutdown waits for the leave notice to reach
// the NATS server.
const flushTimeout = 2 * time.Second

// Config configures an Agent.
type Config struct {
	// NATSURL is the NATS server to connect to (e.g. nats://127.0.0.1:4222),
	// unless Conn is set. Exactly one of the two is required.
	NATSURL string
	// Conn is an existing connection; the agent uses it but does not close it.
	Conn *nats.Conn

	Node    string            // required: the node name (see wire.ValidNodeName)
	DataDir string            // required: created if missing; the runner's state and logs
	Labels  map[string]string // sent in every heartbeat (see ParseLabels)

	Interval time.Duration // heartbeat interval; default DefaultInterval
	// MemoryMB, when positive, makes the node a slice of the machine of
	// this much memory (see sliceMemory): several nodes on one machine,
	// or a node that leaves the rest of the machine to other work.
	MemoryMB int64

	// AliveInterval is the interval of the liveness beats (wire.Alive), which
	// the server's failure detection follows; default DefaultAliveInterval.
	AliveInterval time.Duration
	// ProbeAddr is the host:port the probe listener binds (port 0: a free
	// one); default DefaultProbeAddr. Heartbeats report the bound address,
	// so the host must be one the servers can reach.
	ProbeAddr string
	// SelfFenceAfter is how long the agent runs group resources without
	// hearing a quorate leader beacon before it kills them; default
	// DefaultSelfFenceAfter (see there why it must outlast a leader
	// handover).
	SelfFenceAfter time.Duration
	// StopWorkloadsOnExit makes Run stop every workload before it returns.
	// Off by default: an agent restart leaves workloads running and the next
	// agent re-adopts them.
	StopWorkloadsOnExit bool
	StopGrace           time.Duration // SIGTERM→SIGKILL grace; default runner.DefaultStopGrace

	// MigrateAddr is the host (an address of this node) that the CRIU page
	// servers of incoming migrations listen on; default DefaultMigrateAddr.
	MigrateAddr string
	// CRIUPath is the criu binary; default "criu" on PATH. Without a
	// working CRIU 4.x the node takes no part in migrations.
	CRIUPath string
	// InjectRestoreFailure: fault injection for tests. The next migration
	// restore of each of these workload ids fails after CRIU has restored
	// it, through the real failure path. Never set it in production.
	InjectRestoreFailure []string

	Logger *slog.Logger // default: discard
	Clock  Clock        // default: SystemClock()
}

// DefaultMigrateAddr is Config.MigrateAddr's default.
const DefaultMigrateAddr = "127.0.0.1"

// migrateTimeout bounds one migration operation on the agent: a dump or a
// send-images of a big workload takes seconds per GiB.
const migrateTimeout = 10 * time.Minute

// Agent is the node agent. Create it with New and run it with Run.
type Agent struct {
	cfg        Config
	log        *slog.Logger
	clock      Clock
	cmdTimeout time.Duration
	ran        atomic.Bool

	epochs *epochGuard

	features wire.NodeFeatures // detected by Run before the first heartbeat
	// capacity and headroom are the last measurement; only the heartbeat
	// loop uses them.
	capacity  wire.Capacity
	headroom  wire.Headroom
	probeAddr string // the probe listener's address, set by Run
	fence     *selfFence
	mons      *monitors     // set by Run
	kick      chan struct{} // a heartbeat is wanted now (see kickHeartbeat)
	migs      *migration.Manager

	mu       sync.Mutex // guards closing and inflight.Add
	closing  bool
	inflight sync.WaitGroup
}

// New validates cfg and creates the data dir. It connects to nothing and
// starts nothing: Run does.
func New(cfg Config) (*Agent, error) {
	if err := wire.ValidNodeName(cfg.Node); err != nil {
		return nil, fmt.Errorf("nodeagent: %w", err)
	}
	switch {
	case cfg.NATSURL == "" && cfg.Conn == nil:
		return nil, fmt.Errorf("nodeagent %s: no NATS server: set Config.NATSURL (e.g. nats://127.0.0.1:4222)", cfg.Node)
	case cfg.NATSURL != "" && cfg.Conn != nil:
		return nil, fmt.Errorf("nodeagent %s: both Config.NATSURL and Config.Conn are set: set one", cfg.Node)
	}
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("nodeagent %s: Config.DataDir is required", cfg.Node)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("nodeagent %s: data dir: %w", cfg.Node, err)
	}
	if err := ValidateLabels(cfg.Labels); err != nil {
		return nil, fmt.Errorf("nodeagent %s: %w", cfg.Node, err)
	}
	cfg.Labels = maps.Clone(cfg.Labels)
	if cfg.Interval < 0 {
		return nil, fmt.Errorf("nodeagent %s: negative heartbeat interval %v", cfg.Node, cfg.Interval)
	}
	if cfg.MemoryMB < 0 {
		return nil, fmt.Errorf("nodeagent %s: negative memory size %d MiB", cfg.Node, cfg.MemoryMB)
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.AliveInterval < 0 {
		return nil, fmt.Errorf("nodeagent %s: negative alive interval %v", cfg.Node, cfg.AliveInterval)
	}
	if cfg.AliveInterval == 0 {
		cfg.AliveInterval = DefaultAliveInterval
	}
	if cfg.ProbeAddr == "" {
		cfg.ProbeAddr = DefaultProbeAddr
	}
	if cfg.SelfFenceAfter < 0 {
		return nil, fmt.Errorf("nodeagent %s: negative self-fence delay %v", cfg.Node, cfg.SelfFenceAfter)
	}
	if cfg.SelfFenceAfter == 0 {
		cfg.SelfFenceAfter = DefaultSelfFenceAfter
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = runner.DefaultStopGrace
	}
	if cfg.MigrateAddr == "" {
		cfg.MigrateAddr = DefaultMigrateAddr
	}
	epochs, err := loadEpochGuard(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("nodeagent %s: %w", cfg.Node, err)
	}
	a := &Agent{
		epochs: epochs,
		cfg:    cfg,
		log:    cfg.Logger,
		clock:  cfg.Clock,
		// A stop may take the whole grace period, then killing and cgroup
		// removal; a start is quick unless the machine is very busy.
		cmdTimeout: cfg.StopGrace + 30*time.Second,
		fence:      newSelfFence(cfg.SelfFenceAfter),
		kick:       make(chan struct{}, 1),
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.log = a.log.With("node", cfg.Node)
	if a.clock == nil {
		a.clock = SystemClock()
	}
	return a, nil
}

// Run runs the agent until ctx ends: it re-adopts the workloads of its data
// dir, connects to NATS (retrying forever, also for the first connection),
// serves commands and sends heartbeats. When ctx ends it stops serving,
// waits for the commands in progress, stops all workloads if
// Config.StopWorkloadsOnExit, announces its leave and returns nil. It returns
// an error only if it cannot start.
func (a *Agent) Run(ctx context.Context) error {
	if !a.ran.CompareAndSwap(false, true) {
		return ErrAlreadyRun
	}
	r, err := runner.New(runner.Config{
		DataDir:   a.cfg.DataDir,
		Node:      a.cfg.Node,
		Logger:    a.log,
		StopGrace: a.cfg.StopGrace,
		OnExit:    a.onExit,
	})
	if err != nil {
		return fmt.Errorf("nodeagent %s: %w", a.cfg.Node, err)
	}
	defer r.Close()
	probe, err := listenProbe(a.cfg.ProbeAddr, a.cfg.Node, a.log)
	if err != nil {
		return fmt.Errorf("nodeagent %s: %w", a.cfg.Node, err)
	}
	defer probe.Close()
	a.probeAddr = probe.Addr()

	nc := a.cfg.Conn
	if nc == nil {
		nc, err = a.connect()
		if err != nil {
			return err
		}
		defer nc.Close()
	}
	feats, client, why := migration.Detect(ctx, a.cfg.CRIUPath, a.cfg.MigrateAddr)
	if why != "" {
		a.log.Warn("this node cannot take part in live migrations", "reason", why)
	} else {
		// CRIU without its kernel facts cache works, only ~12 ms slower a
		// call (three calls while a post-copy migration is frozen).
		if mounted, err := criu.EnsureKernelFactsCache(criu.KernelFactsDir); err != nil {
			a.log.Warn("CRIU will probe the kernel at every call", "err", err)
		} else if mounted {
			a.log.Info("mounted a tmpfs for CRIU's kernel facts cache (/run is not a tmpfs here)", "dir", criu.KernelFactsDir)
		}
		a.log.Info("CRIU found", "version", feats.CRIUVersion, "mem_dirty_track", feats.MemDirtyTrack, "lazy_pages", feats.LazyPages, "uffd", feats.UFFD, "lazy_pages_why_not", feats.LazyPagesWhyNot)
	}
	a.features = feats
	var injected map[string]bool
	for _, id := range a.cfg.InjectRestoreFailure {
		if injected == nil {
			injected = map[string]bool{}
		}
		injected[id] = true
		a.log.Warn("FAULT INJECTION: the next migration restore of this workload will fail", "workload", id)
	}
	a.migs, err = migration.New(migration.Config{
		Node: a.cfg.Node, DataDir: a.cfg.DataDir, Runner: r, Conn: nc, CRIU: migration.Real(client),
		Features: feats, MigrateAddr: a.cfg.MigrateAddr, Logger: a.log, FailRestoreFor: injected,
	})
	if err != nil {
		return fmt.Errorf("nodeagent %s: %w", a.cfg.Node, err)
	}
	defer a.migs.Close()
	subject := wire.SubjectCommand(a.cfg.Node)
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) { a.dispatch(ctx, r, m) })
	if err != nil {
		return fmt.Errorf("nodeagent %s: subscribe to %s: %w", a.cfg.Node, subject, err)
	}
	a.log.Info("node agent running", "commands", subject, "interval", a.cfg.Interval,
		"alive_interval", a.cfg.AliveInterval, "probe_addr", a.probeAddr)
	stopHA, err := a.startHA(ctx, nc, r)
	if err != nil {
		sub.Unsubscribe()
		return err
	}

	sampler := metrics.NewSampler(a.cfg.DataDir)
	ticker := a.clock.NewTicker(a.cfg.Interval)
	defer ticker.Stop()
	measure := true
beating:
	for seq := uint64(1); ; seq++ {
		a.heartbeat(ctx, nc, sampler, r, seq, measure)
		select {
		case <-ticker.C():
			measure = true
		case <-a.kick:
			measure = false
		case <-ctx.Done():
			break beating
		}
	}

	a.log.Info("node agent shutting down")
	// No liveness beat may follow the leave notice.
	stopHA()
	if err := sub.Unsubscribe(); err != nil {
		a.log.Warn("unsubscribing from commands", "err", err)
	}
	a.mu.Lock()
	a.closing = true
	a.mu.Unlock()
	a.inflight.Wait()

	// Stop the workloads before announcing the leave, so that a server that
	// reschedules them on the leave never runs two copies.
	if a.cfg.StopWorkloadsOnExit {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cmdTimeout)
		if err := r.StopAll(sctx); err != nil {
			a.log.Error("stopping workloads on exit", "err", err)
		}
		cancel()
	}
	leave := wire.Leave{V: wire.Version, Node: a.cfg.Node}
	if err := nc.Publish(wire.SubjectLeave(a.cfg.Node), wire.Encode(leave)); err != nil {
		a.log.Warn("publishing leave", "err", err)
	} else if err := nc.FlushTimeout(flushTimeout); err != nil {
		a.log.Warn("flushing leave", "err", err)
	}
	return nil
}

func (a *Agent) connect() (*nats.Conn, error) {
	log := a.log
	nc, err := nats.Connect(a.cfg.NATSURL,
		nats.Name("baton-agent "+a.cfg.Node),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(time.Second),
		nats.ConnectHandler(func(c *nats.Conn) { log.Info("connected to NATS", "url", c.ConnectedUrlRedacted()) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("disconnected from NATS", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("reconnected to NATS", "url", c.ConnectedUrlRedacted()) }),
		nats.ErrorHandler(func(_ *nats.Conn, s *nats.Subscription, err error) {
			subj := ""
			if s != nil {
				subj = s.Subject
			}
			log.Error("NATS error", "subject", subj, "err", err)
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("nodeagent %s: connect to NATS at %s: %w", a.cfg.Node, a.cfg.NATSURL, err)
	}
	return nc, nil
}

// heartbeat publishes a full report. It measures the machine only if
// measure; a heartbeat sent early (kickHeartbeat) repeats the last
// measurement, whose CPU figure needs a whole interval to mean something.
func (a *Agent) heartbeat(ctx context.Context, nc *nats.Conn, s *metrics.Sampler, r *runner.Runner, seq uint64, measure bool) {
	if measure {
		var err error
		a.capacity, a.headroom, err = s.Sample(ctx)
		if err != nil && ctx.Err() == nil {
			a.log.Warn("measuring headroom", "err", err)
		}
	}
	a.mons.sync(r.GroupResources())
	workloads := r.List()
	capacity, headroom := a.capacity, a.headroom
	if a.cfg.MemoryMB > 0 {
		capacity, headroom = sliceMemory(capacity, headroom, a.cfg.MemoryMB, workloads)
	}
	hb := wire.Heartbeat{
		V:          wire.Version,
		Node:       a.cfg.Node,
		Seq:        seq,
		SentAt:     a.clock.Now().UTC(),
		IntervalMS: a.cfg.Interval.Milliseconds(),
		Labels:     a.cfg.Labels,
		Capacity:   capacity,
		Headroom:   headroom,
		Workloads:  workloads,
		Features:   &a.features,

		AliveIntervalMS: a.cfg.AliveInterval.Milliseconds(),
		ProbeAddr:       a.probeAddr,
		SelfFenced:      a.fence.isFenced(),
	}
	if err := nc.Publish(wire.SubjectHeartbeat(a.cfg.Node), wire.Encode(hb)); err != nil {
		a.log.Warn("publishing heartbeat", "seq", seq, "err", err)
	}
}

// dispatch runs on the subscription's goroutine: it hands each command to a
// goroutine of its own, so that a stop waiting out its grace period does not
// hold up the commands behind it.
func (a *Agent) dispatch(ctx context.Context, r *runner.Runner, m *nats.Msg) {
	a.mu.Lock()
	if a.closing {
		a.mu.Unlock()
		a.respond(m, wire.CommandReply{V: wire.Version, Error: "node agent " + a.cfg.Node + " is shutting down"})
		return
	}
	a.inflight.Add(1)
	a.mu.Unlock()
	go func() {
		defer a.inflight.Done()
		a.handle(ctx, r, m)
	}()
}

func (a *Agent) handle(ctx context.Context, r *runner.Runner, m *nats.Msg) {
	cmd, err := wire.DecodeCommand(m.Data)
	if err != nil {
		a.log.Warn("malformed command", "subject", m.Subject, "bytes", len(m.Data), "err", err)
		a.respond(m, wire.CommandReply{V: wire.Version, Error: err.Error()})
		return
	}
	if err := a.epochs.admit(cmd.Epoch); err != nil {
		a.log.Warn("refusing command", "op", cmd.Op, "err", err)
		a.respond(m, wire.CommandReply{V: wire.Version, Error: err.Error()})
		return
	}
	// A command in progress finishes even if the agent is shutting down.
	timeout := a.cmdTimeout
	if cmd.Migration != nil || cmd.Chunk != nil {
		timeout = migrateTimeout
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if cmd.Migration != nil || cmd.Chunk != nil {
		rep, err := a.migs.Handle(cctx, cmd)
		reply := wire.CommandReply{V: wire.Version, Migration: rep}
		if err != nil {
			a.log.Warn("migration command failed", "op", cmd.Op, "err", err)
			reply.Error = err.Error()
		}
		a.respond(m, reply)
		return
	}
	if cmd.Op == wire.OpSelfFence {
		a.selfFenceOrdered(cctx, r, cmd.Epoch)
		a.respond(m, wire.CommandReply{V: wire.Version})
		return
	}
	var st wire.WorkloadStatus
	switch {
	case cmd.Op == wire.OpStart && cmd.Workload.Group != nil:
		st, err = a.startGroupResource(cctx, r, *cmd.Workload, cmd.Epoch)
	case cmd.Op == wire.OpStart:
		st, err = r.Start(cctx, *cmd.Workload)
	case cmd.Op == wire.OpStop:
		st, err = r.Stop(cctx, cmd.ID)
		if st.Group != nil {
			a.kickHeartbeat() // the group engine waits for this stop
		}
	}
	reply := wire.CommandReply{V: wire.Version, Status: &st}
	if err != nil {
		a.log.Warn("command failed", "op", cmd.Op, "id", st.ID, "err", err)
		reply.Error = err.Error()
	}
	a.respond(m, reply)
}

func (a *Agent) respond(m *nats.Msg, reply wire.CommandReply) {
	if m.Reply == "" {
		return
	}
	if err := m.Respond(wire.Encode(reply)); err != nil {
		a.log.Warn("replying to command", "err", err)
	}
}

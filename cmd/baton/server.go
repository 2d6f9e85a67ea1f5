package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/batonhq/baton/failover/groups"
	"github.com/batonhq/baton/failover/membership"
	"github.com/batonhq/baton/failover/quorum"
	"github.com/batonhq/baton/migrate"
	"github.com/batonhq/baton/natsbus"
	"github.com/batonhq/baton/placement"
	"github.com/batonhq/baton/placement/rebalance"
	"github.com/batonhq/baton/scheduler"
	"github.com/batonhq/baton/scheduler/httpapi"
	"github.com/batonhq/baton/scheduler/lease"
	"github.com/batonhq/baton/scheduler/store"
)

// serverConfig is what `baton server` (and `baton dev`) run with.
type serverConfig struct {
	API        string
	DataDir    string
	NATSURL    string // empty: embed a NATS server
	NATSListen string
	KVReplicas int
	Strategy   string
	Name       string        // this server's name in the leadership lease
	LeaseTTL   time.Duration // how long a dead leader's lease outlives it

	// Failover.
	ExpectedVotes int  // the full cluster's node votes; 0: the nodes seen
	WaitForAll    bool // a fresh cluster waits until every expected vote was live once
	Detection     string
	FenceConfig   string // the fence devices and levels (scheduler/fencing)
	WitnessURL    string // a baton witness; empty: none
	WitnessTTL    time.Duration
	Cluster       string // the cluster's name at the witness
	// Rebalance is the rebalancing level (empty: rebalance.DefaultLevel),
	// RebalanceOn the measured resources it watches (empty: memory,cpu).
	Rebalance, RebalanceOn string
	// AllowPostCopy lets migration mode auto choose post-copy.
	AllowPostCopy bool
}

func runServer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("server", "[flags]", `Run the scheduler and its REST API. By default it embeds a NATS server with
JetStream (data under --data-dir) that agents connect to at --nats-listen.
Give --nats to use an existing NATS deployment instead (a cluster with
replicated JetStream in production).`, stderr)
	var cfg serverConfig
	fs.StringVar(&cfg.API, "api", "127.0.0.1:7480", "address of the REST API")
	fs.StringVar(&cfg.DataDir, "data-dir", "/var/lib/baton/server", "directory for the server's data (the embedded JetStream store)")
	fs.StringVar(&cfg.NATSURL, "nats", "", "URL of an existing NATS deployment; empty embeds one")
	fs.StringVar(&cfg.NATSListen, "nats-listen", "127.0.0.1:4222", "where the embedded NATS server listens for agents")
	fs.IntVar(&cfg.KVReplicas, "kv-replicas", 1, "JetStream replicas of the desired-state bucket (3 on a NATS cluster)")
	fs.StringVar(&cfg.Strategy, "strategy", "binpack", "cluster default placement strategy: binpack or spread")
	host, _ := os.Hostname()
	fs.StringVar(&cfg.Name, "name", host, "this server's name; with several servers one leads (see GET /v1/health)")
	fs.DurationVar(&cfg.LeaseTTL, "lease-ttl", lease.DefaultTTL, "leadership lease TTL: a dead leader is replaced within this time")
	fs.IntVar(&cfg.ExpectedVotes, "expected-votes", 0, "node votes of the whole cluster for quorum (0: the votes of every node ever seen)")
	fs.StringVar(&cfg.Detection, "failure-detection", "probe", `how a dead node is detected: "probe" (250 ms liveness beats; after 750 ms of silence a direct probe must fail) or "timeout" (classic: silence of the 1 s heartbeats for 6 s; the failover benchmark's baseline)`)
	fs.StringVar(&cfg.FenceConfig, "fence-config", "", "JSON file of fence devices and per-node fence levels (see scheduler/fencing/README.md); without it a down node's groups wait for 'baton node fence NAME --confirm-off'")
	fs.StringVar(&cfg.WitnessURL, "witness", "", "URL of a baton witness whose proxy vote the leader holds (e.g. http://10.0.0.9:7490); it lets two nodes keep quorum when one dies")
	fs.DurationVar(&cfg.WitnessTTL, "witness-ttl", 3*time.Second, "how long the witness keeps the leader's claim after each renewal")
	fs.StringVar(&cfg.Cluster, "cluster", "baton", "the cluster's name at the witness (one witness can serve several clusters)")
	fs.BoolVar(&cfg.WaitForAll, "wait-for-all", false, "on first start, stay inquorate until every expected vote has been live at once")
	fs.StringVar(&cfg.Rebalance, "rebalance", string(rebalance.DefaultLevel), "move workloads off hot nodes by live migration: off, conservative (hot under 10% free for 5 reports, one migration at a time) or aggressive (20% free, 3 reports, up to 4 at once); drains work whatever the level")
	fs.StringVar(&cfg.RebalanceOn, "rebalance-on", "memory,cpu", "the measured resources that make a node hot: memory,cpu, memory or cpu (several agents on one machine share its CPU: use memory)")
	fs.BoolVar(&cfg.AllowPostCopy, "allow-post-copy", false, "let migration mode auto choose post-copy for workloads too big for stop-copy's downtime budget (an explicit --mode post-copy is always allowed)")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := parse(fs, args); err != nil {
		return err
	}
	log, err := newLogger(stderr, *level)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, log, func(api, natsURL string) {
		fmt.Fprintf(stdout, "baton server: API http://%s, NATS %s\n", api, natsURL)
	})
}

// rebalancePolicy builds the rebalancer's policy from --rebalance and
// --rebalance-on; empty values take the defaults.
func rebalancePolicy(level, on string) (rebalance.Policy, error) {
	p, err := rebalance.PolicyFor(rebalance.Level(cmp.Or(level, string(rebalance.DefaultLevel))))
	if err != nil {
		return p, fmt.Errorf("--rebalance %q: use off, conservative or aggressive", level)
	}
	if on != "" {
		if err := p.ParseWatch(on); err != nil {
			return p, fmt.Errorf("--rebalance-on %q: use memory,cpu, memory or cpu", on)
		}
	}
	return p, nil
}

// serve runs a server until ctx ends. ready is called once the API listens.
func serve(ctx context.Context, cfg serverConfig, log *slog.Logger, ready func(api, natsURL string)) error {
	if cfg.Strategy != string(placement.BinPack) && cfg.Strategy != string(placement.Spread) {
		return fmt.Errorf("--strategy %q: use binpack or spread", cfg.Strategy)
	}
	policy, err := rebalancePolicy(cfg.Rebalance, cfg.RebalanceOn)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("data dir: %w (choose another with --data-dir)", err)
	}
	natsURL := cfg.NATSURL
	if natsURL == "" {
		emb, err := natsbus.StartEmbedded(natsbus.EmbeddedConfig{
			Listen: cfg.NATSListen, StoreDir: filepath.Join(cfg.DataDir, "jetstream"), ServerName: "baton-server",
		})
		if err != nil {
			return err
		}
		defer emb.Shutdown()
		natsURL = emb.URL()
		log.Info("embedded NATS started", "url", natsURL, "store", filepath.Join(cfg.DataDir, "jetstream"))
	}
	nc, err := natsbus.Connect(natsURL, "baton-server")
	if err != nil {
		return err
	}
	defer nc.Close()

	openCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	kv, err := store.OpenKV(openCtx, nc, cfg.KVReplicas)
	cancel()
	if err != nil {
		return err
	}
	openCtx, cancel = context.WithTimeout(ctx, 30*time.Second)
	nodesKV, err := store.OpenNodesKV(openCtx, nc, cfg.KVReplicas)
	cancel()
	if err != nil {
		return err
	}
	openCtx, cancel = context.WithTimeout(ctx, 30*time.Second)
	migrationsKV, err := store.OpenMigrationsKV(openCtx, nc, cfg.KVReplicas)
	cancel()
	if err != nil {
		return err
	}
	leaseKV, err := lease.Open(ctx, nc, cfg.LeaseTTL, cfg.KVReplicas)
	if err != nil {
		return err
	}
	stateCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	haState, err := store.OpenKVState(stateCtx, nc, cfg.KVReplicas)
	cancel()
	if err != nil {
		return err
	}
	detection := membership.FailoverConfig()
	switch cfg.Detection {
	case "", "probe":
	case "timeout":
		detection = membership.DefaultConfig()
	default:
		return fmt.Errorf("--failure-detection %q: use probe or timeout", cfg.Detection)
	}
	if cfg.ExpectedVotes < 0 {
		return fmt.Errorf("--expected-votes %d: give 0 (the nodes seen) or more", cfg.ExpectedVotes)
	}
	ha := scheduler.HAConfig{
		Groups: groups.DefaultConfig(), State: haState, Prober: scheduler.TCPProber{},
		Quorum: quorum.Config{ExpectedVotes: cfg.ExpectedVotes, WaitForAll: cfg.WaitForAll},
	}
	if cfg.FenceConfig != "" {
		f, err := openFencer(ctx, cfg.FenceConfig, &ha, log)
		if err != nil {
			return err
		}
		defer f.Close()
	}
	var wit *leaderWitness
	if cfg.WitnessURL != "" {
		wit = newLeaderWitness(cfg.WitnessURL, cfg.Cluster, cmp.Or(cfg.Name, "baton-server"), cfg.WitnessTTL, log)
		ha.Witness, ha.Quorum.WitnessVotes = wit, 1
	}
	// Recovery without a confirmed fence would be sound only if an agent
	// that dies took its workloads with it; it does not (workloads outlive
	// their agent by design), so only a fence makes a down node safe.
	ha.Groups.SelfFenceWait = 0
	var srv *scheduler.Server
	srv = scheduler.New(scheduler.Config{
		Store: kv, Agents: scheduler.NATSAgents{NC: nc, Epoch: func() uint64 { return srv.Epoch() }}, Logger: log,
		DefaultStrategy: placement.Strategy(cfg.Strategy), AwaitLeadership: true,
		Membership: detection, TimeoutDetection: cfg.Detection == "timeout", Name: cfg.Name, HA: ha,
		Rebalance: policy, NodeStore: nodesKV,
		MigrationPolicy: migrate.Policy{AllowPostCopy: cfg.AllowPostCopy}, MigrationStore: migrationsKV,
	})
	if err := srv.Load(ctx); err != nil {
		return err
	}
	if cfg.Name == "" {
		cfg.Name = "baton-server"
	}
	// The holder is unique per process: a restarted server must not take
	// its predecessor's lease for its own while that one may still act.
	var suffix [3]byte
	_, _ = rand.Read(suffix[:])
	holder := cfg.Name + "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(suffix[:])
	campaign := lease.New(leaseKV, lease.Config{Holder: holder, TTL: cfg.LeaseTTL, Logger: log})

	ln, err := net.Listen("tcp", cfg.API)
	if err != nil {
		return fmt.Errorf("REST API: %w (is another baton server running? choose another address with --api)", err)
	}
	httpSrv := &http.Server{Handler: httpapi.Handler(srv, log), ReadHeaderTimeout: 10 * time.Second}
	httpErr := make(chan error, 1)
	go func() { httpErr <- httpSrv.Serve(ln) }()
	runErr := make(chan error, 1)
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	go func() { runErr <- srv.Run(runCtx, nc, 0) }()
	leaseDone := make(chan struct{})
	go func() {
		defer close(leaseDone)
		_ = campaign.Run(runCtx, func(st lease.State) {
			if wit != nil {
				wit.lead(runCtx, st.Leader)
			}
			if err := srv.SetLeadership(runCtx, st.Leader, st.Epoch, st.Holder); err != nil {
				log.Error("taking up leadership", "err", err)
			}
		})
	}()
	log.Info("REST API listening", "addr", ln.Addr().String())
	if ready != nil {
		ready(ln.Addr().String(), natsURL)
	}

	select {
	case <-ctx.Done():
	case err = <-httpErr:
		err = fmt.Errorf("REST API: %w", err)
	case err = <-runErr:
	}
	stopRun()
	<-leaseDone // resigned: a standby server takes over at once
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if serr := httpSrv.Shutdown(shutdownCtx); serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		log.Warn("REST API shutdown", "err", serr)
	}
	log.Info("server stopped")
	return err
}

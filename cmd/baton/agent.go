package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/batonhq/baton/nodeagent"
)

func runAgent(ctx context.Context, args []string, _, stderr io.Writer) error {
	host, _ := os.Hostname()
	fs := newFlags("agent", "--nats URL --name NAME [flags]", `Run the node agent: it reports this node's measured headroom to the server
every --interval and runs the workloads the server places here, each in its
own PID namespace and cgroup. Workloads outlive the agent: a restarted agent
re-adopts them from the state in --data-dir.`, stderr)
	var cfg nodeagent.Config
	fs.StringVar(&cfg.NATSURL, "nats", "nats://127.0.0.1:4222", "URL of the NATS server (baton server embeds one at 127.0.0.1:4222)")
	fs.StringVar(&cfg.Node, "name", host, "this node's name, unique in the cluster")
	fs.StringVar(&cfg.DataDir, "data-dir", "/var/lib/baton/agent", "directory for the agent's state and workload logs")
	labels := fs.String("labels", "", "labels for placement constraints, e.g. zone=a,disk=ssd")
	fs.DurationVar(&cfg.Interval, "interval", time.Second, "heartbeat interval")
	fs.DurationVar(&cfg.AliveInterval, "alive-interval", nodeagent.DefaultAliveInterval, "interval of the small liveness beats that the servers' failure detection follows")
	fs.DurationVar(&cfg.SelfFenceAfter, "self-fence-after", nodeagent.DefaultSelfFenceAfter, "kill this node's group resources (plain workloads stay) after this long without a beacon from a quorate leader; "+
		"must outlast a leader handover (about the servers' --lease-ttl), and the servers must not restart this node's groups unfenced before it has passed")
	fs.StringVar(&cfg.ProbeAddr, "probe-addr", nodeagent.DefaultProbeAddr, "host:port of the probe listener (port 0: a free one) that servers connect to before declaring this node down; use an address they can reach")
	fs.StringVar(&cfg.MigrateAddr, "migrate-addr", nodeagent.DefaultMigrateAddr, "address of this node that live migrations' CRIU page servers listen on (a free port each); other nodes must reach it")
	fs.StringVar(&cfg.CRIUPath, "criu", "", "the criu binary (default: criu on PATH; make deps installs 4.x in /usr/local/sbin)")
	fs.Int64Var(&cfg.MemoryMB, "memory-mb", 0, "report this node as a slice of the machine with this much memory (MiB): free memory is then the slice minus the resident memory of this node's workloads (never more than the machine has). For several nodes on one machine; 0: the whole machine")
	fs.BoolVar(&cfg.StopWorkloadsOnExit, "stop-workloads-on-exit", false, "stop every workload when the agent exits (baton dev uses this)")
	injectRestore := fs.String("inject-restore-failure", "", "FAULT INJECTION, tests only: comma-separated workload names or ids whose next migration restore here fails after CRIU restored them")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *injectRestore != "" {
		cfg.InjectRestoreFailure = strings.Split(*injectRestore, ",")
	}
	var err error
	if cfg.Labels, err = nodeagent.ParseLabels(*labels); err != nil {
		return fmt.Errorf("--labels: %w", err)
	}
	if cfg.Logger, err = newLogger(stderr, *level); err != nil {
		return err
	}
	agent, err := nodeagent.New(cfg)
	if err != nil {
		return err
	}
	return agent.Run(ctx)
}

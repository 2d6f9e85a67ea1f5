package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("dev", "[--nodes N] [--api ADDR]", `Run a working local cluster in one command: a server with embedded NATS, plus
N agents as separate processes (node-1 ... node-N), each with its own data
dir. Ctrl-C (SIGINT) or SIGTERM stops everything it started, workloads
included, and removes the data dir unless --keep is given.`, stderr)
	nodes := fs.Int("nodes", 3, "number of agents to start")
	api := fs.String("api", "127.0.0.1:7480", "address of the REST API")
	natsListen := fs.String("nats-listen", "127.0.0.1:0", "where the embedded NATS listens (port 0 picks a free one)")
	dataDir := fs.String("data-dir", "", "data dir for the server and agents (default: a new temporary dir)")
	keep := fs.Bool("keep", false, "keep the data dir on exit")
	level := fs.String("log-level", "warn", "log level of the server and agents: debug, info, warn, error")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *nodes < 1 || *nodes > 64 {
		return fmt.Errorf("--nodes %d: choose between 1 and 64", *nodes)
	}
	log, err := newLogger(stderr, *level)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the baton binary to start agents: %w", err)
	}
	dir := *dataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "baton-dev-"); err != nil {
			return fmt.Errorf("creating a data dir: %w", err)
		}
		if !*keep {
			defer os.RemoveAll(dir)
		}
	} else if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("--data-dir %s: %w (choose a directory you can create)", dir, err)
	}

	// The dev nodes are fenced by killing their agent and every process in
	// their cgroups, as powering a machine off would.
	fenceConfig, err := writeDevFenceConfig(dir, *nodes)
	if err != nil {
		return err
	}

	// The server runs in this process; the agents are children that it
	// stops on the way out, after the server has stopped talking to them.
	serverCtx, stopServer := context.WithCancel(context.Background())
	defer stopServer()
	type ready struct{ api, nats string }
	readyc := make(chan ready, 1)
	serverErr := make(chan error, 1)
	go func() {
		serverErr <- serve(serverCtx, serverConfig{
			API: *api, DataDir: filepath.Join(dir, "server"), NATSListen: *natsListen, KVReplicas: 1, Strategy: "binpack",
			FenceConfig: fenceConfig,
		}, log.With("component", "server"), func(a, n string) { readyc <- ready{a, n} })
	}()
	var r ready
	select {
	case r = <-readyc:
	case err := <-serverErr:
		return err
	case <-ctx.Done():
		stopServer()
		return <-serverErr
	}

	agents := &agentGroup{log: log}
	defer agents.stop()
	for i := 1; i <= *nodes; i++ {
		name := "node-" + strconv.Itoa(i)
		if err := agents.start(exe, name, r.nats, filepath.Join(dir, name), *level, stderr); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "Baton dev cluster: %d nodes, data in %s\n", *nodes, dir)
	fmt.Fprintf(stdout, "  API:    http://%s   (try: baton status --api http://%s)\n", r.api, r.api)
	fmt.Fprintf(stdout, "  NATS:   %s\n", r.nats)
	fmt.Fprintf(stdout, "Press Ctrl-C to stop everything.\n")

	// An agent that dies (killed to try failover, say) does not stop the
	// cluster: its node goes down, is fenced, and its groups move on.
	for done := false; !done; {
		select {
		case <-ctx.Done():
			fmt.Fprintf(stdout, "stopping...\n")
			done = true
		case err := <-serverErr:
			return err
		case err := <-agents.exited:
			fmt.Fprintf(stderr, "%v; its node goes down and its resource groups fail over (the cluster goes on; Ctrl-C stops it)\n", err)
		}
	}
	agents.stop()
	stopServer()
	return <-serverErr
}

// agentGroup is the agent processes started by baton dev.
type agentGroup struct {
	log    *slog.Logger
	mu     sync.Mutex
	procs  []*exec.Cmd
	done   []chan struct{}
	exited chan error
	once   sync.Once
}

func (g *agentGroup) start(exe, name, natsURL, dataDir, level string, stderr io.Writer) error {
	if g.exited == nil {
		g.exited = make(chan error, 64)
	}
	cmd := exec.Command(exe, "agent", "--nats", natsURL, "--name", name, "--data-dir", dataDir,
		"--stop-workloads-on-exit", "--log-level", level)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	// Own process group, so the terminal's Ctrl-C reaches only baton dev,
	// which stops the agents in order; and SIGTERM if baton dev dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting agent %s: %w", name, err)
	}
	done := make(chan struct{})
	g.mu.Lock()
	g.procs = append(g.procs, cmd)
	g.done = append(g.done, done)
	g.mu.Unlock()
	go func() {
		err := cmd.Wait()
		close(done)
		if err == nil {
			err = errors.New("exit status 0")
		}
		g.exited <- fmt.Errorf("agent %s: %w", name, err)
	}()
	return nil
}

// stop sends SIGTERM to every agent (each stops its workloads), waits up to
// 20 s, then kills whatever is left.
func (g *agentGroup) stop() {
	g.once.Do(func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		for _, c := range g.procs {
			_ = c.Process.Signal(syscall.SIGTERM)
		}
		deadline, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for i, c := range g.procs {
			select {
			case <-g.done[i]:
			case <-deadline.Done():
				g.log.Warn("agent did not stop in time; killing it", "pid", c.Process.Pid)
				_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
				<-g.done[i]
			}
		}
	})
}

// writeDevFenceConfig writes the fence configuration of a dev cluster: one
// process-driver device for every node.
func writeDevFenceConfig(dir string, nodes int) (string, error) {
	names := make([]string, 0, nodes)
	for i := 1; i <= nodes; i++ {
		names = append(names, "node-"+strconv.Itoa(i))
	}
	cfg := map[string]any{
		"devices": map[string]any{"power": map[string]any{"driver": "process", "params": map[string]string{
			"host_list": strings.Join(names, ","),
			"cgroup":    "/sys/fs/cgroup/pids/baton/{node}",
			"match":     `baton agent .*--name {node}( |$)`,
		}}},
		"default_levels": []string{"power"},
	}
	b, _ := json.Marshal(cfg)
	path := filepath.Join(dir, "fence.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return "", fmt.Errorf("writing the dev fence configuration: %w", err)
	}
	return path, nil
}

package integration

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/batonhq/baton/natsbus"
	"github.com/batonhq/baton/wire"
)

var (
	fleetAgents    = flag.Int("fleet.agents", 1000, "simulated agents in BenchmarkFleet")
	fleetWorkloads = flag.Int("fleet.workloads", 3, "workloads per simulated agent in BenchmarkFleet")
	fleetWindow    = flag.Duration("fleet.window", 30*time.Second, "how long BenchmarkFleet measures each phase")
)

// BenchmarkFleet measures what a fleet costs one server: a real `baton
// server` process (scheduler, embedded NATS with JetStream, lease, REST API)
// and -fleet.agents simulated agents in this process, each on its own NATS
// connection, publishing real wire.Heartbeat messages every second with
// -fleet.workloads workloads each (created through the REST API, started by
// the server's real start commands, which the simulated agents answer).
//
// The server runs in a child process so that its CPU time (utime + stime
// from /proc/PID/stat, all its threads) is its own; the simulator's cost
// shows separately. Three phases, each measured over -fleet.window, give
// the server's CPU as a share of one core and its resident memory:
//
//	idle          the server with no agent: the baseline (lease, ticks)
//	heartbeats    every agent heartbeats at 1 Hz
//	+alive        and also sends liveness beats at 4 Hz, as agents do by default
//
// The fleet must stay healthy: every node running and every workload
// running at the end, or the benchmark fails.
func BenchmarkFleet(b *testing.B) {
	agents, perAgent := *fleetAgents, *fleetWorkloads
	c := &cluster{t: b, dataDir: b.TempDir()}
	c.apiAddr = freeAddr(b)
	c.api = "http://" + c.apiAddr
	natsAddr := freeAddr(b)
	c.server = startProc(b, "server", "server", "--api", c.apiAddr, "--nats-listen", natsAddr,
		"--data-dir", c.dataDir, "--name", "fleet", "--log-level", "warn")
	c.waitLeader(30 * time.Second)
	serverPID := c.server.cmd.Process.Pid

	idle := measure(b, serverPID, nil)
	b.Run("idle", func(b *testing.B) { idle.report(b) })

	f := startFleet(b, "nats://"+natsAddr, agents)
	c.waitNodesRunning(agents)
	createWorkloads(b, c, f, perAgent)
	b.Run("heartbeats", func(b *testing.B) {
		m := measure(b, serverPID, f.sent.Load)
		f.checkHealthy(b, c, perAgent)
		m.report(b)
	})
	f.aliveOn.Store(true)
	b.Run("heartbeats+alive", func(b *testing.B) {
		m := measure(b, serverPID, f.sent.Load)
		f.checkHealthy(b, c, perAgent)
		m.report(b)
	})
}

// fleet is the simulated agents.
type fleet struct {
	agents  []*fakeAgent
	sent    atomic.Int64 // messages published (heartbeats and liveness beats)
	aliveOn atomic.Bool
	stop    chan struct{}
	wg      sync.WaitGroup
}

// fakeAgent answers start and stop commands as a real agent does and reports
// what it "runs" in its heartbeats.
type fakeAgent struct {
	name string
	nc   *nats.Conn
	mu   sync.Mutex
	runs map[string]wire.WorkloadStatus
}

func startFleet(b *testing.B, natsURL string, n int) *fleet {
	f := &fleet{stop: make(chan struct{})}
	for i := range n {
		a := &fakeAgent{name: fmt.Sprintf("fleet-%04d", i), runs: map[string]wire.WorkloadStatus{}}
		nc, err := natsbus.Connect(natsURL, "fake agent "+a.name)
		if err != nil {
			b.Fatal(err)
		}
		a.nc = nc
		if _, err := nc.Subscribe(wire.SubjectCommand(a.name), a.handle); err != nil {
			b.Fatal(err)
		}
		f.agents = append(f.agents, a)
	}
	b.Cleanup(func() {
		close(f.stop)
		f.wg.Wait()
		for _, a := range f.agents {
			a.nc.Close()
		}
	})
	// Each agent beats on its own ticker, their phases spread over the
	// second as a real fleet's are.
	for i, a := range f.agents {
		f.wg.Go(func() { f.beat(a, time.Duration(i)*time.Second/time.Duration(n)) })
	}
	return f
}

func (f *fleet) beat(a *fakeAgent, phase time.Duration) {
	select {
	case <-time.After(phase):
	case <-f.stop:
		return
	}
	heartbeats := time.NewTicker(time.Second)
	defer heartbeats.Stop()
	alive := time.NewTicker(250 * time.Millisecond)
	defer alive.Stop()
	var seq, aliveSeq uint64
	for {
		select {
		case <-f.stop:
			return
		case <-heartbeats.C:
			seq++
			a.heartbeat(seq, f.aliveOn.Load())
			f.sent.Add(1)
		case <-alive.C:
			if f.aliveOn.Load() {
				aliveSeq++
				_ = a.nc.Publish(wire.SubjectAlive(a.name), wire.Encode(wire.Alive{V: wire.Version, Node: a.name, Seq: aliveSeq, IntervalMS: 250}))
				f.sent.Add(1)
			}
		}
	}
}

// heartbeat publishes what a 32-core, 128 GiB node running its workloads
// would report.
func (a *fakeAgent) heartbeat(seq uint64, alive bool) {
	a.mu.Lock()
	ws := make([]wire.WorkloadStatus, 0, len(a.runs))
	for _, w := range a.runs {
		ws = append(ws, w)
	}
	a.mu.Unlock()
	hb := wire.Heartbeat{
		V: wire.Version, Node: a.name, Seq: seq, SentAt: time.Now().UTC(), IntervalMS: 1000,
		Labels:    map[string]string{"zone": "z" + a.name[len(a.name)-1:]},
		Capacity:  wire.Capacity{CPUs: 32, CPUMillis: 32000, MemoryMB: 131072, DiskMB: 500000},
		Headroom:  wire.Headroom{CPUMillis: 28000, MemoryMB: 120000, DiskMB: 400000, CPUPercent: 12.5, Load1: 4, Load5: 4, Load15: 4},
		Workloads: ws,
		Features:  &wire.NodeFeatures{},
	}
	if alive {
		hb.AliveIntervalMS = 250
	}
	_ = a.nc.Publish(wire.SubjectHeartbeat(a.name), wire.Encode(hb))
}

func (a *fakeAgent) handle(m *nats.Msg) {
	reply := wire.CommandReply{V: wire.Version}
	cmd, err := wire.DecodeCommand(m.Data)
	a.mu.Lock()
	switch {
	case err != nil:
		reply.Error = err.Error()
	case cmd.Op == wire.OpStart:
		st, ok := a.runs[cmd.Workload.ID]
		if !ok {
			st = wire.WorkloadStatus{ID: cmd.Workload.ID, Name: cmd.Workload.Name, State: wire.StateRunning,
				HostPID: 10000 + len(a.runs), StartedAt: time.Now().UTC(), Resources: cmd.Workload.Resources}
			a.runs[st.ID] = st
		}
		reply.Status = &st
	case cmd.Op == wire.OpStop:
		st := a.runs[cmd.ID]
		st.ID, st.State = cmd.ID, wire.StateStopped
		delete(a.runs, cmd.ID)
		reply.Status = &st
	default:
		reply.Error = "the fleet simulator does not do " + cmd.Op
	}
	a.mu.Unlock()
	_ = m.Respond(wire.Encode(reply))
}

// createWorkloads creates perAgent workloads pinned to each agent through
// the REST API, a few at a time, and waits until the server sees them all
// running.
func createWorkloads(b *testing.B, c *cluster, f *fleet, perAgent int) {
	jobs := make(chan string)
	var wg sync.WaitGroup
	var failed atomic.Value
	for range 8 {
		wg.Go(func() {
			for name := range jobs {
				node, _, _ := strings.Cut(name, "/")
				r, err := c.do("POST", "/v1/workloads", map[string]any{
					"name": strings.ReplaceAll(name, "/", "-"), "command": []string{"/bin/true"},
					"resources":   map[string]int64{"cpu_millis": 250, "memory_mb": 256},
					"constraints": map[string]any{"nodes": []string{node}},
				})
				if err == nil && r.Status != 201 {
					err = fmt.Errorf("status %d: %s", r.Status, r.Body)
				}
				if err != nil {
					failed.Store(fmt.Errorf("creating workload %s: %w", name, err))
				}
			}
		})
	}
	for _, a := range f.agents {
		for j := range perAgent {
			jobs <- a.name + "/w" + strconv.Itoa(j)
		}
	}
	close(jobs)
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	f.waitWorkloadsRunning(b, c, len(f.agents)*perAgent)
}

func (f *fleet) waitWorkloadsRunning(b *testing.B, c *cluster, want int) {
	c.eventually(60*time.Second, fmt.Sprintf("%d workloads run", want), func() error {
		r, err := c.get("/v1/workloads")
		if err != nil {
			return err
		}
		var v struct{ Workloads []workload }
		if err := json.Unmarshal(r.Body, &v); err != nil {
			return err
		}
		running := 0
		for _, w := range v.Workloads {
			if w.State == "running" {
				running++
			}
		}
		if running != want || len(v.Workloads) != want {
			return fmt.Errorf("%d of %d running (%d known)", running, want, len(v.Workloads))
		}
		return nil
	})
}

// checkHealthy fails b unless every node and workload is running.
func (f *fleet) checkHealthy(b *testing.B, c *cluster, perAgent int) {
	c.waitNodesRunning(len(f.agents))
	f.waitWorkloadsRunning(b, c, len(f.agents)*perAgent)
}

// measurement is the server's cost over one window.
type measurement struct {
	wall      time.Duration
	serverCPU time.Duration
	selfCPU   time.Duration // this process: the simulator (and the test)
	rssKiB    int64
	hwmKiB    int64
	messages  int64
}

// measure watches the server pid over -fleet.window; sent, if not nil,
// counts the messages the fleet published.
func measure(b *testing.B, pid int, sent func() int64) measurement {
	var m0 int64
	if sent != nil {
		m0 = sent()
	}
	cpu0, self0, t0 := processCPU(b, pid), selfCPU(), time.Now()
	time.Sleep(*fleetWindow) // the measurement window itself, not a wait for a condition
	m := measurement{serverCPU: processCPU(b, pid) - cpu0, selfCPU: selfCPU() - self0, wall: time.Since(t0)}
	if sent != nil {
		m.messages = sent() - m0
	}
	m.rssKiB, m.hwmKiB = processMemory(b, pid)
	return m
}

func (m measurement) report(b *testing.B) {
	b.ReportMetric(100*m.serverCPU.Seconds()/m.wall.Seconds(), "server-cpu-%")
	b.ReportMetric(float64(m.rssKiB)/1024, "server-rss-MiB")
	b.ReportMetric(float64(m.hwmKiB)/1024, "server-peak-rss-MiB")
	b.ReportMetric(float64(m.messages)/m.wall.Seconds(), "msgs/s")
	b.ReportMetric(100*m.selfCPU.Seconds()/m.wall.Seconds(), "simulator-cpu-%")
	b.ReportMetric(m.wall.Seconds(), "window-s")
}

// processCPU is the user and system CPU time of pid and all its threads.
func processCPU(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatalf("reading the server's CPU time: %v", err)
	}
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // fields from 3 (state) on
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)           // field 14
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)           // field 15
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: cannot read utime and stime from %q", pid, s)
	}
	const clockTicks = 100 // USER_HZ: 100 on every Linux Baton runs on (getconf CLK_TCK)
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// processMemory is pid's resident set size and its peak, in KiB.
func processMemory(b *testing.B, pid int) (rss, hwm int64) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatalf("reading the server's memory: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, _ := strings.Cut(line, ":")
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = n
		case "VmHWM":
			hwm = n
		}
	}
	return rss, hwm
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

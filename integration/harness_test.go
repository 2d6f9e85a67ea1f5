package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// batonBin is the binary under test: $BATON_BIN (set by make test) or one
// built by TestMain; the fence drivers (baton-fence-*) are next to it.
var batonBin string

// runID marks this test binary's processes: every process it starts
// inherits BATON_IT_RUN=runID, so that the leak check counts only this run's
// when several runs share a machine.
var runID = uniq()

func TestMain(m *testing.M) {
	os.Setenv("BATON_IT_RUN", runID)
	batonBin = os.Getenv("BATON_BIN")
	if batonBin == "" {
		dir, err := os.MkdirTemp("", "baton-it-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		batonBin = filepath.Join(dir, "baton")
		// The fence drivers go next to baton, where baton server finds them
		// (as make build puts them next to bin/baton).
		out, err := exec.Command("go", "build", "-o", dir+"/", "../cmd/baton",
			"../plugins/fence/drivers/fenceagent/cmd/baton-fence-agent",
			"../plugins/fence/drivers/ipmi/cmd/baton-fence-ipmi",
			"../plugins/fence/drivers/process/cmd/baton-fence-process").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "building baton: %v\n%s", err, out)
			os.Exit(1)
		}
		code := leakCheck(m.Run())
		os.RemoveAll(dir)
		os.Exit(code)
	}
	os.Exit(leakCheck(m.Run()))
}

// leakCheck fails the run if any baton process or workload started by these
// tests is still alive: every test must clean up what it started. Another
// run's processes are not this run's leaks, and are left alone.
func leakCheck(code int) int {
	deadline := time.Now().Add(10 * time.Second)
	for {
		leaks := append(leakedProcesses(), leakedNetworks()...)
		if len(leaks) == 0 {
			return code
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "leak check: processes or test networks outlived the tests:\n  %s\n", strings.Join(leaks, "\n  "))
			for _, l := range leaks {
				if pid, err := strconv.Atoi(strings.Fields(l)[0]); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			return 1
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func leakedProcesses() []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() || !alive(pid) {
			continue
		}
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		node := environ(pid)["BATON_NODE"]
		if exe == batonBin && environ(pid)["BATON_IT_RUN"] == runID || ourNode(node) {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			out = append(out, fmt.Sprintf("%d %s (node %q)", pid, strings.ReplaceAll(string(cmdline), "\x00", " "), node))
		}
	}
	return out
}

// requirePrivileged skips a test that needs root, or fails it when CI demands
// the capability.
func requirePrivileged(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("BATON_REQUIRE_PRIVILEGED") == "1" {
		t.Fatal("this test needs root (PID namespaces, cgroups) and BATON_REQUIRE_PRIVILEGED=1 is set")
	}
	t.Skip("needs root (PID namespaces, cgroups); set BATON_REQUIRE_PRIVILEGED=1 to make this a failure")
}

// startNATS runs an embedded NATS server with JetStream on a random loopback port.
func startNATS(t testing.TB) string {
	t.Helper()
	return startNATSOn(t, "127.0.0.1")
}

// startNATSOn runs an embedded NATS server with JetStream on a random port of
// host (an address of this machine: loopback, or a test network's bridge).
func startNATSOn(t testing.TB, host string) string {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: host, Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("embedded NATS not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s.ClientURL()
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// uniqs holds every uniq() of this run; node names are "it"+uniq()+"-nN".
var uniqs sync.Map

func uniq() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	u := hex.EncodeToString(b[:])
	uniqs.Store(u, true)
	return u
}

// ourNode says whether node is named after a uniq() of this run (a workload's
// BATON_NODE: workloads do not inherit BATON_IT_RUN).
func ourNode(node string) bool {
	rest, ok := strings.CutPrefix(node, "it")
	u, _, _ := strings.Cut(rest, "-")
	_, mine := uniqs.Load(u)
	return ok && mine
}

// proc is a baton process started by a test, in its own process group and
// killed (with its group) at cleanup.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startProc(t testing.TB, name string, args ...string) *proc {
	t.Helper()
	return startCommand(t, name, exec.Command(batonBin, args...))
}

// startCommand starts cmd as a proc (its own process group, killed at
// cleanup).
func startCommand(t testing.TB, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{name: name, out: &syncBuffer{}, done: make(chan struct{}), cmd: cmd}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("output of %s:\n%s", name, p.out.String())
		}
	})
	return p
}

// kill sends SIGKILL to the process group and waits.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits up to timeout.
func (p *proc) stop(t *testing.T, timeout time.Duration) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %s of SIGTERM\n%s", p.name, timeout, p.out.String())
	}
}

// cluster is a server and its agents, all real processes.
type cluster struct {
	t       testing.TB
	natsURL string
	api     string // http://host:port
	apiAddr string
	dataDir string
	prefix  string // node name prefix, unique per test so cgroups never clash
	server  *proc
	agents  map[string]*proc
	// serverArgs are extra flags for baton server (e.g. --fence-config).
	serverArgs []string
	// agentArgs are extra flags for every baton agent (e.g. --memory-mb).
	agentArgs []string
	// lab, if set, is the test network whose hosts the agents run in.
	lab *netLab
}

func newCluster(t *testing.T, agents int) *cluster {
	t.Helper()
	return newClusterWith(t, agents, nil, nil)
}

// newClusterWith is newCluster with extra flags for the server and for
// every agent.
func newClusterWith(t *testing.T, agents int, serverArgs, agentArgs []string) *cluster {
	t.Helper()
	return startCluster(t, agents, nil, serverArgs, agentArgs)
}

// newNetCluster is newClusterWith with every node a host of its own in a
// test network (see netLab): NATS listens on the network's bridge, the
// server runs in the host namespace, each agent in its node's namespace.
func newNetCluster(t *testing.T, agents int, serverArgs, agentArgs []string) (*cluster, *netLab) {
	t.Helper()
	lab := newNetLab(t)
	return startCluster(t, agents, lab, serverArgs, agentArgs), lab
}

func startCluster(t *testing.T, agents int, lab *netLab, serverArgs, agentArgs []string) *cluster {
	t.Helper()
	requirePrivileged(t)
	natsHost := "127.0.0.1"
	if lab != nil {
		natsHost = lab.bridgeIP
	}
	c := &cluster{t: t, natsURL: startNATSOn(t, natsHost), dataDir: t.TempDir(), prefix: "it" + uniq(), agents: map[string]*proc{},
		serverArgs: serverArgs, agentArgs: agentArgs, lab: lab}
	c.apiAddr = freeAddr(t)
	c.api = "http://" + c.apiAddr
	c.startServer()
	for i := 1; i <= agents; i++ {
		if lab != nil {
			lab.addHost(c.node(i))
		}
		c.startAgent(c.node(i))
	}
	t.Cleanup(c.killWorkloads)
	c.waitNodesRunning(agents)
	return c
}

func (c *cluster) node(i int) string { return fmt.Sprintf("%s-n%d", c.prefix, i) }

func (c *cluster) startServer() {
	c.server = startProc(c.t, "server", append([]string{"server", "--api", c.apiAddr, "--nats", c.natsURL,
		"--data-dir", filepath.Join(c.dataDir, "server"), "--log-level", "debug"}, c.serverArgs...)...)
	c.waitLeader(20 * time.Second)
}

// waitLeader waits until the API at c.api answers as the leader.
func (c *cluster) waitLeader(timeout time.Duration) {
	c.t.Helper()
	c.eventually(timeout, "the server at "+c.api+" leads", func() error {
		r, err := c.get("/v1/health")
		if err != nil {
			return err
		}
		var h struct{ Leader bool }
		if err := json.Unmarshal(r.Body, &h); err != nil || !h.Leader {
			return fmt.Errorf("not leading: %s", r.Body)
		}
		return nil
	})
}

// startAgent starts node name's agent: in its own network namespace when
// the cluster has a test network (probed at its address there).
func (c *cluster) startAgent(name string) {
	args := append([]string{"agent", "--nats", c.natsURL, "--name", name,
		"--data-dir", filepath.Join(c.dataDir, name), "--interval", "250ms", "--log-level", "debug"}, c.agentArgs...)
	if h := c.lab.host(name); h != nil {
		args = append(args, "--probe-addr", h.ip+":0")
		c.agents[name] = startCommand(c.t, "agent "+name+" (in "+h.ns+")", h.command(append([]string{batonBin}, args...)...))
		return
	}
	c.agents[name] = startProc(c.t, "agent "+name, args...)
}

// killWorkloads kills every process left in this test's cgroups, so a failed
// test never leaks workloads, then removes the test's cgroups. The agents
// die first (and the server): alive, they would start again a group
// resource killed here, after the kill.
func (c *cluster) killWorkloads() {
	if c.server != nil {
		c.server.kill()
	}
	for _, a := range c.agents {
		a.kill()
	}
	dirs, _ := filepath.Glob("/sys/fs/cgroup/pids/baton/" + c.prefix + "-*/*/cgroup.procs")
	for _, f := range dirs {
		b, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(s); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	// Killed processes leave their cgroups at once; empty cgroups are removed
	// leaves first (rmdir of a cgroup dir removes its control files).
	deadline := time.Now().Add(5 * time.Second)
	for _, pattern := range []string{"/sys/fs/cgroup/*/baton/" + c.prefix + "-*/*", "/sys/fs/cgroup/*/baton/" + c.prefix + "-*"} {
		groups, _ := filepath.Glob(pattern)
		for _, g := range groups {
			if fi, err := os.Stat(g); err != nil || !fi.IsDir() {
				continue
			}
			for os.Remove(g) != nil && time.Now().Before(deadline) {
				if _, err := os.Stat(g); err != nil {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
}

func (c *cluster) eventually(timeout time.Duration, what string, f func() error) {
	c.t.Helper()
	eventually(c.t, timeout, what, f)
}

// eventually polls f every 100 ms until it returns nil, failing t after timeout.
func eventually(t testing.TB, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s: %v", timeout, what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type response struct {
	Status int
	Body   []byte
}

func (r response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.Body, err)
	}
}

func (c *cluster) do(method, path string, body any) (response, error) {
	var rd io.Reader
	if s, ok := body.(string); ok {
		rd = strings.NewReader(s)
	} else if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.api+path, rd)
	if err != nil {
		return response{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Body: b}, err
}

func (c *cluster) get(path string) (response, error) { return c.do("GET", path, nil) }

func (c *cluster) mustDo(method, path string, body any, wantStatus int) response {
	c.t.Helper()
	r, err := c.do(method, path, body)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	if r.Status != wantStatus {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, wantStatus, r.Body)
	}
	return r
}

type node struct {
	Name     string `json:"name"`
	State    string `json:"state"`
	Capacity struct {
		CPUs      int   `json:"cpus"`
		CPUMillis int64 `json:"cpu_millis"`
		MemoryMB  int64 `json:"memory_mb"`
	} `json:"capacity"`
	Headroom struct {
		CPUMillis int64 `json:"cpu_millis"`
		MemoryMB  int64 `json:"memory_mb"`
		DiskMB    int64 `json:"disk_mb"`
	} `json:"headroom"`
}

type workload struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Node    string `json:"node"`
	State   string `json:"state"`
	HostPID int    `json:"host_pid"`
}

func (c *cluster) nodes() []node {
	c.t.Helper()
	var v struct{ Nodes []node }
	c.mustDo("GET", "/v1/nodes", nil, 200).decode(c.t, &v)
	return v.Nodes
}

func (c *cluster) workloads() []workload {
	c.t.Helper()
	var v struct{ Workloads []workload }
	c.mustDo("GET", "/v1/workloads", nil, 200).decode(c.t, &v)
	return v.Workloads
}

func (c *cluster) workload(id string) workload {
	c.t.Helper()
	var w workload
	c.mustDo("GET", "/v1/workloads/"+id, nil, 200).decode(c.t, &w)
	return w
}

func (c *cluster) waitNodesRunning(n int) {
	c.t.Helper()
	c.eventually(30*time.Second, fmt.Sprintf("%d nodes are running", n), func() error {
		r, err := c.get("/v1/nodes")
		if err != nil {
			return err
		}
		var v struct{ Nodes []node }
		if err := json.Unmarshal(r.Body, &v); err != nil {
			return err
		}
		running := 0
		for _, nd := range v.Nodes {
			if nd.State == "running" {
				running++
			}
		}
		if running != n {
			return fmt.Errorf("%d of %d running: %s", running, n, r.Body)
		}
		return nil
	})
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] != 'Z'
}

// descendants returns pid and every process below it.
func descendants(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		f := strings.Fields(s[i+1:])
		if len(f) > 2 {
			ppid, _ := strconv.Atoi(f[1])
			children[ppid] = append(children[ppid], p)
		}
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// environ returns a process's environment.
func environ(pid int) map[string]string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	env := map[string]string{}
	for _, kv := range strings.Split(string(b), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

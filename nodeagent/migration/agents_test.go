package migration_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/batonhq/baton/nodeagent"
	"github.com/batonhq/baton/nodeagent/internal/testutil"
	"github.com/batonhq/baton/wire"
)

func TestMain(m *testing.M) { testutil.Main(m) }

const waitTimeout = 20 * time.Second

// criuPath is the CRIU the tests use: $BATON_CRIU, or the one make deps
// installs.
var criuPath = func() string {
	if p := os.Getenv("BATON_CRIU"); p != "" {
		return p
	}
	return "/usr/local/sbin/criu"
}()

func needCRIU(t *testing.T) {
	t.Helper()
	testutil.RequirePrivileged(t)
	if _, err := os.Stat(criuPath); err != nil {
		if os.Getenv("BATON_REQUIRE_PRIVILEGED") == "1" {
			t.Fatalf("BATON_REQUIRE_PRIVILEGED=1 but there is no CRIU at %s (run make deps): %v", criuPath, err)
		}
		t.Skipf("no CRIU at %s (run make deps)", criuPath)
	}
}

// cluster is an embedded NATS server, a client connection (the "server"
// driving migrations by hand) and the agents.
type cluster struct {
	t   *testing.T
	url string
	nc  *nats.Conn
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(waitTimeout) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	nc, err := nats.Connect(s.ClientURL(), nats.Name("baton-migration-test"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return &cluster{t: t, url: s.ClientURL(), nc: nc}
}

// agent is one running nodeagent.Agent.
type agent struct {
	name, dir string
	cancel    context.CancelFunc
	done      chan error
	hb        *nats.Subscription
}

// startAgent runs an agent for node name on dir (a fresh one unless dir is
// given: a restart).
func (c *cluster) startAgent(name, dir string) *agent {
	t := c.t
	t.Helper()
	if dir == "" {
		dir = filepath.Join(t.TempDir(), name)
		testutil.CleanupNode(t, name) // runs after the agent's own cleanup
	}
	a, err := nodeagent.New(nodeagent.Config{
		NATSURL: c.url, Node: name, DataDir: dir, Interval: 100 * time.Millisecond,
		StopGrace: time.Second, CRIUPath: criuPath,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		t.Fatal(err)
	}
	hb, err := c.nc.SubscribeSync(wire.SubjectHeartbeat(name))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ag := &agent{name: name, dir: dir, cancel: cancel, done: make(chan error, 1), hb: hb}
	go func() { ag.done <- a.Run(ctx) }()
	t.Cleanup(func() { ag.stop(t) })
	c.waitHeartbeat(ag, "features with CRIU", func(hb wire.Heartbeat) bool {
		return hb.Features != nil && hb.Features.CRIU && hb.Features.HostID != ""
	})
	return ag
}

func (a *agent) stop(t *testing.T) {
	if a.cancel == nil {
		return
	}
	a.cancel()
	a.cancel = nil
	a.hb.Unsubscribe()
	select {
	case err := <-a.done:
		if err != nil {
			t.Errorf("agent %s: Run: %v", a.name, err)
		}
	case <-time.After(waitTimeout):
		t.Errorf("agent %s did not stop", a.name)
	}
}

func (c *cluster) waitHeartbeat(a *agent, what string, ok func(wire.Heartbeat) bool) wire.Heartbeat {
	c.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	var last wire.Heartbeat
	for time.Now().Before(deadline) {
		m, err := a.hb.NextMsg(time.Until(deadline))
		if err != nil {
			break
		}
		hb, err := wire.DecodeHeartbeat(m.Data)
		if err != nil {
			c.t.Fatalf("bad heartbeat: %v", err)
		}
		if last = hb; ok(hb) {
			return hb
		}
	}
	c.t.Fatalf("no heartbeat of %s with %s; last: %+v", a.name, what, last)
	return wire.Heartbeat{}
}

// workload returns the status of id in hb, if listed.
func workload(hb wire.Heartbeat, id string) (wire.WorkloadStatus, bool) {
	i := slices.IndexFunc(hb.Workloads, func(w wire.WorkloadStatus) bool { return w.ID == id })
	if i < 0 {
		return wire.WorkloadStatus{}, false
	}
	return hb.Workloads[i], true
}

// request sends cmd to node and returns the reply.
func (c *cluster) request(node string, cmd wire.Command) wire.CommandReply {
	c.t.Helper()
	cmd.V = wire.Version
	m, err := c.nc.Request(wire.SubjectCommand(node), wire.Encode(cmd), 2*time.Minute)
	if err != nil {
		c.t.Fatalf("%s to %s: %v", cmd.Op, node, err)
	}
	rep, err := wire.DecodeCommandReply(m.Data)
	if err != nil {
		c.t.Fatal(err)
	}
	return rep
}

// op runs a migration op and fails the test on an error.
func (c *cluster) op(node, op string, mc wire.MigrationCmd) wire.MigrationReply {
	c.t.Helper()
	rep := c.request(node, wire.Command{Op: op, Migration: &mc})
	if rep.Error != "" {
		c.t.Fatalf("%s of migration %s on %s: %s", op, mc.ID, node, rep.Error)
	}
	if rep.Migration == nil {
		return wire.MigrationReply{}
	}
	return *rep.Migration
}

// opErr runs a migration op that must fail and returns its error.
func (c *cluster) opErr(node, op string, mc wire.MigrationCmd) string {
	c.t.Helper()
	rep := c.request(node, wire.Command{Op: op, Migration: &mc})
	if rep.Error == "" {
		c.t.Fatalf("%s of migration %s on %s succeeded, want an error", op, mc.ID, node)
	}
	return rep.Error
}

// stopWorkload stops id on node (the tests end with it; if they fail
// before, testutil.CleanupNode kills what is left and says so).
func (c *cluster) stopWorkload(node, id string) {
	c.t.Helper()
	if rep := c.request(node, wire.Command{Op: wire.OpStop, ID: id}); rep.Error != "" {
		c.t.Errorf("stop %s on %s: %s", id, node, rep.Error)
	}
}

// counterScript keeps i in the shell's memory and appends it to ./count.
const counterScript = `i=0; while :; do i=$((i+1)); echo "tick $i"; echo $i >> count; sleep 0.1; done`

func randID(prefix string) string {
	var b [4]byte
	rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// startCounter starts the counter on a and waits until it has counted to 3.
func (c *cluster) startCounter(a *agent) (wire.WorkloadSpec, string) {
	c.t.Helper()
	wd := filepath.Join(c.t.TempDir(), "work")
	if err := os.MkdirAll(wd, 0o755); err != nil {
		c.t.Fatal(err)
	}
	spec := wire.WorkloadSpec{ID: randID("counter"), Command: []string{"sh", "-c", counterScript}, Workdir: wd, Resources: wire.Resources{MemoryMB: 64}}
	rep := c.request(a.name, wire.Command{Op: wire.OpStart, Workload: &spec})
	if rep.Error != "" {
		c.t.Fatal(rep.Error)
	}
	testutil.WaitFor(c.t, waitTimeout, "the counter to reach 3", func() bool { return last(counts(c.t, wd)) >= 3 })
	return spec, wd
}

func counts(t *testing.T, wd string) []int {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(wd, "count"))
	var out []int
	for _, l := range strings.Fields(string(b)) {
		v, err := strconv.Atoi(l)
		if err != nil {
			t.Fatalf("count file: %q", l)
		}
		out = append(out, v)
	}
	return out
}

func last(xs []int) int {
	if len(xs) == 0 {
		return 0
	}
	return xs[len(xs)-1]
}

// checkConsecutive fails unless the count file is 1, 2, 3, ...: the counter
// never restarted and never ran twice.
func checkConsecutive(t *testing.T, wd string) {
	t.Helper()
	xs := counts(t, wd)
	for i, v := range xs {
		if v != i+1 {
			t.Fatalf("count file is not 1..n: line %d is %d (around %v): the counter restarted or two copies ran", i+1, v, xs[max(0, i-3):min(len(xs), i+3)])
		}
	}
}

func frozenState(t *testing.T, node, id string) string {
	b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/freezer/baton", node, id, "freezer.state"))
	if err != nil {
		return "none"
	}
	return strings.TrimSpace(string(b))
}

func cgroupExists(node, id string) bool {
	for _, c := range []string{"memory", "pids", "cpu", "freezer"} {
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", c, "baton", node, id)); err == nil {
			return true
		}
	}
	return false
}

// move migrates spec from one agent to the other as a scheduler would:
// prepare → dump → send-images → restore (retried once: same PID) → commit
// on both. It returns the new PID.
func (c *cluster) move(spec wire.WorkloadSpec, wd string, from, to *agent) int {
	t := c.t
	t.Helper()
	mc := wire.MigrationCmd{ID: randID("mig"), Workload: spec, Source: from.name, Target: to.name, Mode: "stop-copy"}
	prep := c.op(to.name, wire.OpMigratePrepare, mc)
	if prep.PageServer == "" {
		t.Fatal("prepare: no page server")
	}
	if again := c.op(to.name, wire.OpMigratePrepare, mc); again.PageServer != prep.PageServer {
		t.Fatalf("retried prepare: page server %s, first %s", again.PageServer, prep.PageServer)
	}
	mc.PageServer = prep.PageServer
	dump := c.op(from.name, wire.OpMigrateDump, mc)
	atDump := last(counts(t, wd))
	if dump.FrozenAt.IsZero() || dump.SourceLog == "" || dump.SourceWorkdir != wd || dump.RSSBytes <= 0 {
		t.Fatalf("dump reply lacks something: %+v", dump)
	}
	if again := c.op(from.name, wire.OpMigrateDump, mc); !again.FrozenAt.Equal(dump.FrozenAt) {
		t.Fatalf("retried dump froze again: %v, first %v", again.FrozenAt, dump.FrozenAt)
	}
	if st := frozenState(t, from.name, spec.ID); st != "FROZEN" {
		t.Fatalf("source freezer is %s after the dump", st)
	}
	hb := c.waitHeartbeat(from, "the workload migrating", func(hb wire.Heartbeat) bool {
		w, ok := workload(hb, spec.ID)
		return ok && w.State == wire.StateMigrating
	})
	_ = hb
	sent := c.op(from.name, wire.OpMigrateSendImages, mc)
	if sent.Bytes <= 0 {
		t.Fatalf("send-images moved %d bytes", sent.Bytes)
	}
	mc.SourceLog, mc.SourceWorkdir = dump.SourceLog, dump.SourceWorkdir
	res := c.op(to.name, wire.OpMigrateRestore, mc)
	if again := c.op(to.name, wire.OpMigrateRestore, mc); again.PID != res.PID {
		t.Fatalf("retried restore: pid %d, first %d (a second copy?)", again.PID, res.PID)
	}
	testutil.WaitFor(t, waitTimeout, "the restored counter to go on", func() bool { return last(counts(t, wd)) >= atDump+3 })
	mc.Role = wire.RoleSource
	c.op(from.name, wire.OpMigrateCommit, mc)
	c.op(from.name, wire.OpMigrateCommit, mc) // retried: no-op
	mc.Role = wire.RoleTarget
	c.op(to.name, wire.OpMigrateCommit, mc)
	if e := c.opErr(to.name, wire.OpMigrateAbort, wire.MigrationCmd{ID: mc.ID, Workload: spec, Source: from.name, Target: to.name, Role: wire.RoleTarget, KillTarget: true}); !strings.Contains(e, "committed") {
		t.Errorf("abort after commit: %s", e)
	}
	t.Logf("%s → %s: pid → %d, count %d at the dump, dump took %s (%d B pages, RSS %d B), %d B of images sent, restore took %s",
		from.name, to.name, res.PID, atDump, dump.Took, dump.Bytes, dump.RSSBytes, sent.Bytes, res.Took)

	c.waitHeartbeat(from, "the source forgot it", func(hb wire.Heartbeat) bool {
		_, ok := workload(hb, spec.ID)
		return !ok
	})
	c.waitHeartbeat(to, "the target runs it with the new pid", func(hb wire.Heartbeat) bool {
		w, ok := workload(hb, spec.ID)
		return ok && w.State == wire.StateRunning && w.HostPID == res.PID
	})
	if cgroupExists(from.name, spec.ID) {
		t.Errorf("the source's cgroups of %s remain after the commit", spec.ID)
	}
	for _, a := range []*agent{from, to} {
		if _, err := os.Stat(filepath.Join(a.dir, "migrations", mc.ID, "images")); err == nil {
			t.Errorf("images of %s remain on %s after the commit", mc.ID, a.name)
		}
	}
	log, _ := os.ReadFile(filepath.Join(to.dir, "workloads", spec.ID, "output.log"))
	if !strings.Contains(string(log), fmt.Sprintf("tick %d\n", atDump+1)) {
		t.Errorf("the target's log lacks tick %d: the restored process does not write to it", atDump+1)
	}
	checkConsecutive(t, wd)
	return res.PID
}

// TestMigrateThereAndBack moves a counter that keeps its count in memory
// from agent a to agent b and back, by hand as the scheduler would.
func TestMigrateThereAndBack(t *testing.T) {
	needCRIU(t)
	c := newCluster(t)
	a := c.startAgent(testutil.NodeName(t), "")
	b := c.startAgent(testutil.NodeName(t), "")
	spec, wd := c.startCounter(a)
	c.move(spec, wd, a, b)
	c.move(spec, wd, b, a)
	n := last(counts(t, wd))
	testutil.WaitFor(t, waitTimeout, "the counter to go on after the way back", func() bool { return last(counts(t, wd)) >= n+2 })
	checkConsecutive(t, wd)
	checkNoCRIULeft(t)
	c.stopWorkload(a.name, spec.ID)
}

// checkNoCRIULeft checks that no criu process the agents started (they run
// in this test process: page servers, a restore's criu started ahead) is
// still there, alive or unreaped, once the migrations have ended.
func checkNoCRIULeft(t *testing.T) {
	t.Helper()
	var live []string
	testutil.WaitFor(t, waitTimeout, "the agents' criu processes to end", func() bool {
		live = live[:0]
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
			if err != nil {
				continue
			}
			s := string(st)
			i := strings.LastIndexByte(s, ')')
			if i < 0 || !strings.Contains(s[:i], "(criu") {
				continue
			}
			f := strings.Fields(s[i+1:]) // state, ppid, ...
			// A zombie counts: nobody waited for it, its owner forgot it.
			if len(f) > 1 && f[1] == fmt.Sprint(os.Getpid()) {
				live = append(live, e.Name())
			}
		}
		return len(live) == 0
	})
	if len(live) > 0 {
		t.Errorf("criu processes left: %v", live)
	}
}

// setup starts two agents and a counter on the first, prepares a migration
// to the second and dumps it.
func setup(t *testing.T) (c *cluster, a, b *agent, spec wire.WorkloadSpec, wd string, mc wire.MigrationCmd, dump wire.MigrationReply) {
	needCRIU(t)
	c = newCluster(t)
	a = c.startAgent(testutil.NodeName(t), "")
	b = c.startAgent(testutil.NodeName(t), "")
	spec, wd = c.startCounter(a)
	mc = wire.MigrationCmd{ID: randID("mig"), Workload: spec, Source: a.name, Target: b.name, Mode: "stop-copy"}
	mc.PageServer = c.op(b.name, wire.OpMigratePrepare, mc).PageServer
	dump = c.op(a.name, wire.OpMigrateDump, mc)
	mc.SourceLog, mc.SourceWorkdir = dump.SourceLog, dump.SourceWorkdir
	return
}

// abortBoth aborts mc on the target (kill) and the source (resume), twice
// (an abort may be retried), and checks the source counts on, the target has
// nothing.
//
// atDump > 0 says the restored copy may have run (and counted on in the
// shared workdir) before the abort: the resumed source then counts on from
// atDump, its memory, and writes those numbers again; the check is then that
// the file ends with atDump+1, atDump+2, ... (one copy, from its frozen
// state). Files are not rolled back by an abort.
func (c *cluster) abortBoth(a, b *agent, spec wire.WorkloadSpec, wd string, mc wire.MigrationCmd, pid, atDump int) {
	t := c.t
	t.Helper()
	for range 2 {
		c.op(b.name, wire.OpMigrateAbort, wire.MigrationCmd{ID: mc.ID, Workload: spec, Source: a.name, Target: b.name, Role: wire.RoleTarget, KillTarget: true})
		c.op(a.name, wire.OpMigrateAbort, wire.MigrationCmd{ID: mc.ID, Workload: spec, Source: a.name, Target: b.name, Role: wire.RoleSource, ResumeSource: true})
	}
	checkNoCRIULeft(t)
	n := len(counts(t, wd))
	testutil.WaitFor(t, waitTimeout, "the resumed source to count on", func() bool { return len(counts(t, wd)) >= n+3 })
	if atDump == 0 {
		checkConsecutive(t, wd)
	} else {
		xs := counts(t, wd)
		k := -1
		for i, v := range xs {
			if v == atDump+1 {
				k = i // the last time: the resumed source
			}
		}
		if k < 0 {
			t.Fatalf("the count file never reaches %d: %v", atDump+1, xs)
		}
		for i, v := range xs[k:] {
			if v != atDump+1+i {
				t.Fatalf("after the abort the count file goes %v (from line %d): the source did not resume where it was frozen, or two copies ran", xs[k:], k+1)
			}
		}
	}
	c.waitHeartbeat(a, "the source running again", func(hb wire.Heartbeat) bool {
		w, ok := workload(hb, spec.ID)
		return ok && w.State == wire.StateRunning && w.HostPID == pid
	})
	c.waitHeartbeat(b, "the target without the workload", func(hb wire.Heartbeat) bool {
		_, ok := workload(hb, spec.ID)
		return !ok
	})
	if cgroupExists(b.name, spec.ID) {
		t.Errorf("the target's cgroups of %s remain after the abort", spec.ID)
	}
	for _, ag := range []*agent{a, b} {
		if _, err := os.Stat(filepath.Join(ag.dir, "migrations", mc.ID, "images")); err == nil {
			t.Errorf("images of %s remain on %s after the abort", mc.ID, ag.name)
		}
	}
	mc.Role = wire.RoleSource
	if e := c.opErr(a.name, wire.OpMigrateCommit, mc); !strings.Contains(e, "aborted") {
		t.Errorf("commit after abort: %s", e)
	}
}

// TestRestoreFailsAbort: a corrupt page map (written through the receive
// path) makes the restore fail; a retried restore answers the same failure;
// the abort resumes the source and leaves nothing on the target.
func TestRestoreFailsAbort(t *testing.T) {
	c, a, b, spec, wd, mc, _ := setup(t)
	pid := c.waitHeartbeat(a, "the workload migrating", func(hb wire.Heartbeat) bool {
		w, ok := workload(hb, spec.ID)
		return ok && w.State == wire.StateMigrating
	}).Workloads[0].HostPID
	c.op(a.name, wire.OpMigrateSendImages, mc)
	maps, _ := filepath.Glob(filepath.Join(b.dir, "migrations", mc.ID, "images", "pagemap-*.img"))
	if len(maps) == 0 {
		t.Fatal("no pagemap image on the target")
	}
	for _, p := range maps {
		rep := c.request(b.name, wire.Command{Op: wire.OpMigrateReceive, Chunk: &wire.FileChunk{
			Migration: mc.ID, Kind: "image", Path: filepath.Base(p), Data: []byte("garbage"), Last: true,
		}})
		if rep.Error != "" {
			t.Fatal(rep.Error)
		}
	}
	e := c.opErr(b.name, wire.OpMigrateRestore, mc)
	t.Logf("restore error, as the server sees it: %s", e)
	if e2 := c.opErr(b.name, wire.OpMigrateRestore, mc); !strings.Contains(e2, "failed earlier") {
		t.Errorf("retried restore: %s", e2)
	}
	c.abortBoth(a, b, spec, wd, mc, pid, 0)
	c.stopWorkload(a.name, spec.ID)
}

// TestAbortAfterDump: the source agent restarts while its workload is
// frozen (it stays frozen and reported as migrating), then the migration is
// aborted before any restore: the source resumes where it was.
func TestAbortAfterDump(t *testing.T) {
	c, a, b, spec, wd, mc, _ := setup(t)
	hb := c.waitHeartbeat(a, "the workload migrating", func(hb wire.Heartbeat) bool {
		w, ok := workload(hb, spec.ID)
		return ok && w.State == wire.StateMigrating
	})
	pid := hb.Workloads[0].HostPID
	atDump := last(counts(t, wd))

	a.stop(t)
	a = c.startAgent(a.name, a.dir)
	c.waitHeartbeat(a, "the workload still migrating after the restart", func(hb wire.Heartbeat) bool {
		w, ok := workload(hb, spec.ID)
		return ok && w.State == wire.StateMigrating && w.HostPID == pid
	})
	if st := frozenState(t, a.name, spec.ID); st != "FROZEN" {
		t.Fatalf("source freezer is %s after the agent restart", st)
	}
	if got := last(counts(t, wd)); got != atDump {
		t.Fatalf("the frozen source counted on: %d, want %d", got, atDump)
	}
	c.abortBoth(a, b, spec, wd, mc, pid, 0)
	c.stopWorkload(a.name, spec.ID)
}

// TestTargetRestartAbort: the target agent restarts after a good restore (it
// re-adopts the restored copy), then the migration is aborted: the restored
// copy dies, the target keeps nothing and the source resumes.
func TestTargetRestartAbort(t *testing.T) {
	c, a, b, spec, wd, mc, _ := setup(t)
	pid := c.waitHeartbeat(a, "the workload migrating", func(hb wire.Heartbeat) bool {
		w, ok := workload(hb, spec.ID)
		return ok && w.State == wire.StateMigrating
	}).Workloads[0].HostPID
	atDump := last(counts(t, wd))
	c.op(a.name, wire.OpMigrateSendImages, mc)
	res := c.op(b.name, wire.OpMigrateRestore, mc)
	b.stop(t)
	b = c.startAgent(b.name, b.dir)
	c.waitHeartbeat(b, "the restored copy re-adopted", func(hb wire.Heartbeat) bool {
		w, ok := workload(hb, spec.ID)
		return ok && w.State == wire.StateRunning && w.HostPID == res.PID
	})
	if again := c.op(b.name, wire.OpMigrateRestore, mc); again.PID != res.PID {
		t.Fatalf("restore retried after the restart: pid %d, first %d", again.PID, res.PID)
	}
	c.abortBoth(a, b, spec, wd, mc, pid, atDump)
	testutil.WaitFor(t, waitTimeout, "the restored copy to be gone", func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", res.PID))
		// Gone, or a zombie that its new parent (init) has yet to reap.
		return err != nil || strings.Contains(string(b), ") Z ")
	})
	c.stopWorkload(a.name, spec.ID)
}

// TestAbortDuringRestore: an abort sent while the restore runs cancels it or
// waits for it and kills what it started: exactly one copy runs after.
func TestAbortDuringRestore(t *testing.T) {
	c, a, b, spec, wd, mc, _ := setup(t)
	pid := c.waitHeartbeat(a, "the workload migrating", func(hb wire.Heartbeat) bool {
		w, ok := workload(hb, spec.ID)
		return ok && w.State == wire.StateMigrating
	}).Workloads[0].HostPID
	atDump := last(counts(t, wd))
	c.op(a.name, wire.OpMigrateSendImages, mc)
	cmd := wire.Command{V: wire.Version, Op: wire.OpMigrateRestore, Migration: &mc}
	restored := make(chan string, 1)
	inbox := nats.NewInbox()
	sub, err := c.nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.nc.PublishRequest(wire.SubjectCommand(b.name), inbox, wire.Encode(cmd)); err != nil {
		t.Fatal(err)
	}
	go func() {
		m, err := sub.NextMsg(2 * time.Minute)
		if err != nil {
			restored <- err.Error()
			return
		}
		rep, _ := wire.DecodeCommandReply(m.Data)
		restored <- fmt.Sprintf("error %q, %+v", rep.Error, rep.Migration)
	}()
	c.abortBoth(a, b, spec, wd, mc, pid, atDump)
	t.Logf("the restore sent before the abort answered: %s", <-restored)
	c.stopWorkload(a.name, spec.ID)
}

// TestNoCRIU: an agent without CRIU says so in its heartbeat and answers
// migration ops with what to do.
func TestNoCRIU(t *testing.T) {
	testutil.RequirePrivileged(t)
	c := newCluster(t)
	name := testutil.NodeName(t)
	testutil.CleanupNode(t, name)
	a, err := nodeagent.New(nodeagent.Config{NATSURL: c.url, Node: name, DataDir: t.TempDir(), Interval: 100 * time.Millisecond, CRIUPath: "/nonexistent/criu"})
	if err != nil {
		t.Fatal(err)
	}
	hb, _ := c.nc.SubscribeSync(wire.SubjectHeartbeat(name))
	ctx, cancel := context.WithCancel(context.Background())
	ag := &agent{name: name, cancel: cancel, done: make(chan error, 1), hb: hb}
	go func() { ag.done <- a.Run(ctx) }()
	t.Cleanup(func() { ag.stop(t) })
	got := c.waitHeartbeat(ag, "features", func(hb wire.Heartbeat) bool { return hb.Features != nil })
	if got.Features.CRIU || got.Features.HostID == "" || got.Features.MigrateAddr != nodeagent.DefaultMigrateAddr {
		t.Fatalf("features without CRIU: %+v", *got.Features)
	}
	e := c.opErr(name, wire.OpMigratePrepare, wire.MigrationCmd{ID: "m1", Workload: wire.WorkloadSpec{ID: "w"}, Source: "other", Target: name})
	if !strings.Contains(e, "CRIU is not available on node "+name) || !strings.Contains(e, "make deps") {
		t.Fatalf("prepare without CRIU: %s", e)
	}
}

// TestDumpFailsSourceRunsOn: the target aborts (its page server goes) before
// the source dumps: the dump fails, the source is thawed at once and counts
// on, a retried dump answers the same failure, the abort is a no-op.
func TestDumpFailsSourceRunsOn(t *testing.T) {
	needCRIU(t)
	c := newCluster(t)
	a := c.startAgent(testutil.NodeName(t), "")
	b := c.startAgent(testutil.NodeName(t), "")
	spec, wd := c.startCounter(a)
	pid := c.waitHeartbeat(a, "the workload running", func(hb wire.Heartbeat) bool {
		w, ok := workload(hb, spec.ID)
		return ok && w.State == wire.StateRunning
	}).Workloads[0].HostPID
	mc := wire.MigrationCmd{ID: randID("mig"), Workload: spec, Source: a.name, Target: b.name}
	mc.PageServer = c.op(b.name, wire.OpMigratePrepare, mc).PageServer
	c.op(b.name, wire.OpMigrateAbort, wire.MigrationCmd{ID: mc.ID, Workload: spec, Source: a.name, Target: b.name, Role: wire.RoleTarget, KillTarget: true})
	e := c.opErr(a.name, wire.OpMigrateDump, mc)
	t.Logf("dump error, as the server sees it: %s", e)
	if e2 := c.opErr(a.name, wire.OpMigrateDump, mc); !strings.Contains(e2, "failed earlier") {
		t.Errorf("retried dump: %s", e2)
	}
	c.waitHeartbeat(a, "the source running", func(hb wire.Heartbeat) bool {
		w, ok := workload(hb, spec.ID)
		return ok && w.State == wire.StateRunning && w.HostPID == pid
	})
	c.abortBoth(a, b, spec, wd, mc, pid, 0)
	c.stopWorkload(a.name, spec.ID)
}

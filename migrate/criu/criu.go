package criu

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	gocriu "github.com/checkpoint-restore/go-criu/v7"
	"github.com/checkpoint-restore/go-criu/v7/rpc"
	"github.com/checkpoint-restore/go-criu/v7/stats"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/batonhq/baton/migrate"
)

// Sentinel errors; check them with errors.Is.
var (
	// ErrCRIU: CRIU ran and failed; the error carries the tail of its log.
	ErrCRIU = errors.New("criu: operation failed")
	// ErrNotAvailable: the criu binary cannot be run (not installed, or
	// not as root).
	ErrNotAvailable = errors.New("criu: not available")
	// ErrRestoreProcessUsed: a RestoreProcess handed to a second Restore,
	// or closed before its restore.
	ErrRestoreProcessUsed = errors.New("criu: the prepared criu process was used or closed already")
)

// Log file names, written into the images dir of each call.
const (
	DumpLog       = "dump.log"
	PreDumpLog    = "pre-dump.log"
	RestoreLog    = "restore.log"
	PageServerLog = "page-server.log"
)

// DefaultLogLevel is CRIU's log level for every call (4: debug; CRIU's own
// default of 2 leaves too little to explain a failure).
const DefaultLogLevel = 4

// Client drives CRIU on this node. It is safe for concurrent use; each call
// runs its own `criu swrk` process.
type Client struct {
	path     string
	logLevel int

	mu    sync.Mutex
	feats *migrate.Features
}

// New returns a Client for the criu binary at path ("" = "criu" on PATH).
func New(path string) *Client {
	if path == "" {
		path = "criu"
	}
	return &Client{path: path, logLevel: DefaultLogLevel}
}

func (c *Client) criu() *gocriu.Criu {
	cr := gocriu.MakeCriu()
	cr.SetCriuPath(c.path)
	return cr
}

// Version returns CRIU's version as major*10000+minor*100+sublevel.
func (c *Client) Version(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	v, err := c.criu().GetCriuVersion()
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %v", ErrNotAvailable, c.path, err)
	}
	return v, nil
}

// Features detects (once, then cached) what this node's kernel and CRIU
// support: soft-dirty memory tracking (pre-copy) and lazy pages over
// userfaultfd (post-copy). LazyPages also needs fs.pipe-max-size of at least
// MinPipeMaxSize (see EnsurePipeMaxSize, which the agent calls first): without
// it CRIU's lazy page server fails, so the node cannot be a post-copy source.
func (c *Client) Features(ctx context.Context) (migrate.Features, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.feats != nil {
		return *c.feats, nil
	}
	if err := ctx.Err(); err != nil {
		return migrate.Features{}, err
	}
	got, err := c.criu().FeatureCheck(&rpc.CriuFeatures{MemTrack: proto.Bool(true), LazyPages: proto.Bool(true)})
	if err != nil {
		return migrate.Features{}, fmt.Errorf("%w: feature check with %s: %v", ErrNotAvailable, c.path, err)
	}
	f := migrate.Features{
		MemDirtyTrack: got.GetMemTrack() && softDirtyWorks(),
		LazyPages:     got.GetLazyPages() && pipeMaxSizeOK(),
		// CRIU's lazy_pages check is the kernel's userfaultfd (with the
		// non-cooperative events lazy restore needs).
		UFFD: got.GetLazyPages(),
	}
	c.feats = &f
	return f, nil
}

// DumpOpts says what Dump does.
type DumpOpts struct {
	PID       int    // root of the tree: PID 1 of the workload's PID namespace (host PID)
	ImagesDir string // created if missing; the non-page images and the log land here
	// PageServer "host:port": stream the pages to a CRIU page server (on the
	// target) so that no page lands on the source's disk.
	PageServer string
	// LeaveRunning: the tree is not killed after the dump. With
	// FreezeCgroup already frozen, it stays frozen (see Freezer).
	LeaveRunning bool
	// FreezeCgroup: a freezer cgroup dir that holds the whole tree; CRIU
	// freezes through it instead of with ptrace alone.
	FreezeCgroup string
	TrackMem     bool   // soft-dirty tracking for a later incremental dump
	ParentImg    string // previous (pre-)dump dir, relative to ImagesDir
	PreDump      bool   // a pre-dump: pages only, the tree keeps running
	ShellJob     bool   // the tree's session or tty comes from outside
	// TCPEstablished dumps established TCP connections (the network is
	// locked while frozen).
	TCPEstablished bool
	// NetworkLockSkip: do not lock the network with iptables. Safe for a
	// workload without TCP connections to keep (TCPEstablished false) and
	// without a network namespace of its own; otherwise CRIU needs iptables.
	NetworkLockSkip bool
}

// DumpResult is what a dump measured (CRIU's own stats).
type DumpResult struct {
	Duration     time.Duration // the whole call, swrk start to answer
	FrozenTime   time.Duration // CRIU's frozen time (freeze to dump end)
	MemdumpTime  time.Duration
	MemwriteTime time.Duration
	PagesWritten uint64
	PagesScanned uint64
}

// Dump checkpoints the process tree of o.PID into o.ImagesDir (and the page
// server). It writes its CRIU log to ImagesDir/dump.log (pre-dump.log);
// errors wrap ErrCRIU and carry the log's tail.
func (c *Client) Dump(ctx context.Context, o DumpOpts) (DumpResult, error) {
	if err := ctx.Err(); err != nil {
		return DumpResult{}, err
	}
	if o.PID <= 0 {
		return DumpResult{}, fmt.Errorf("criu dump: no pid given")
	}
	logName := DumpLog
	if o.PreDump {
		logName = PreDumpLog
	}
	dir, err := openDir(o.ImagesDir)
	if err != nil {
		return DumpResult{}, fmt.Errorf("criu dump of pid %d: %w", o.PID, err)
	}
	defer dir.Close()
	opts := &rpc.CriuOpts{
		ImagesDirFd:    proto.Int32(int32(dir.Fd())),
		Pid:            proto.Int32(int32(o.PID)),
		LogLevel:       proto.Int32(int32(c.logLevel)),
		LogFile:        proto.String(logName),
		LeaveRunning:   proto.Bool(o.LeaveRunning),
		ShellJob:       proto.Bool(o.ShellJob),
		TcpEstablished: proto.Bool(o.TCPEstablished),
		TrackMem:       proto.Bool(o.TrackMem),
		// No cgroup layout in the images: Restore runs the restored tree in
		// the target's own cgroups (see joinCgroups).
		ManageCgroups:     proto.Bool(false),
		ManageCgroupsMode: rpc.CriuCgMode_IGNORE.Enum(),
	}
	if o.FreezeCgroup != "" {
		opts.FreezeCgroup = proto.String(o.FreezeCgroup)
	}
	if o.ParentImg != "" {
		opts.ParentImg = proto.String(o.ParentImg)
	}
	if o.NetworkLockSkip {
		opts.NetworkLock = rpc.CriuNetworkLockMethod_SKIP.Enum()
	}
	if o.PageServer != "" {
		host, port, err := splitHostPort(o.PageServer)
		if err != nil {
			return DumpResult{}, fmt.Errorf("criu dump of pid %d: page server: %w", o.PID, err)
		}
		opts.Ps = &rpc.CriuPageServerInfo{Address: proto.String(host), Port: proto.Int32(int32(port))}
	}
	start := time.Now()
	if o.PreDump {
		err = c.criu().PreDump(opts, nil)
	} else {
		err = c.criu().Dump(opts, nil)
	}
	res := DumpResult{Duration: time.Since(start)}
	if err != nil {
		return res, c.fail("dump", fmt.Sprintf("pid %d", o.PID), o.ImagesDir, logName, err)
	}
	if st, err := stats.CriuGetDumpStats(dir); err == nil {
		res.FrozenTime = time.Duration(st.GetFrozenTime()) * time.Microsecond
		res.MemdumpTime = time.Duration(st.GetMemdumpTime()) * time.Microsecond
		res.MemwriteTime = time.Duration(st.GetMemwriteTime()) * time.Microsecond
		res.PagesWritten = st.GetPagesWritten()
		res.PagesScanned = st.GetPagesScanned()
	}
	return res, nil
}

// RestoreOpts says what Restore does.
type RestoreOpts struct {
	ImagesDir string // all the images (pages included)
	// Cgroups maps a v1 controller ("memory", "cpu,cpuacct", "pids",
	// "freezer", ...) to the cgroup path (below the hierarchy's root) the
	// restored tree starts in (see CgroupRoots): the criu process is moved
	// into them before it restores (joinCgroups); missing ones are created
	// without limits. CRIU's own memory and tasks count against the
	// workload's limits during the restore.
	Cgroups map[string]string
	// Log, if set, becomes the restored process's stdout and stderr in
	// place of the file it had on the source (CRIU inherit-fd): LogKey is
	// that file's path as the source saw it (the runner's LogPath).
	Log    *os.File
	LogKey string
	// Detach: the restored tree is reparented to init (or the nearest
	// subreaper) when the restore ends; otherwise it is a child of the
	// calling process (CRIU's restore-sibling), which must reap it.
	Detach bool
	// Process, if set, is the criu process to restore with, started
	// ahead by StartRestore (its Cgroups and Log are used; the ones here
	// are not). Without it Restore starts one.
	Process *RestoreProcess
	// LazyPages: post-copy restore; the images carry no memory and a
	// LazyPagesDaemon started on ImagesDir fills it in.
	LazyPages bool
}

// RestoreResult is what a restore measured.
type RestoreResult struct {
	PID         int           // host PID of the restored root (PID 1 of its namespace)
	Duration    time.Duration // the whole call
	RestoreTime time.Duration // CRIU's own restore time
}

// Restore restores the tree dumped in o.ImagesDir and returns the host PID of
// its root. It writes ImagesDir/restore.log; errors wrap ErrCRIU with the
// log's tail.
func (c *Client) Restore(ctx context.Context, o RestoreOpts) (RestoreResult, error) {
	if o.Process != nil {
		defer o.Process.Close() // whatever happens, a restore ends its criu process
	}
	if err := ctx.Err(); err != nil {
		return RestoreResult{}, err
	}
	dir, err := os.Open(o.ImagesDir)
	if err != nil {
		return RestoreResult{}, fmt.Errorf("criu restore from %s: %w", o.ImagesDir, err)
	}
	defer dir.Close()
	opts := &rpc.CriuOpts{
		ImagesDirFd:       proto.Int32(int32(dir.Fd())),
		LogLevel:          proto.Int32(int32(c.logLevel)),
		LogFile:           proto.String(RestoreLog),
		RstSibling:        proto.Bool(!o.Detach),
		ManageCgroups:     proto.Bool(false),
		ManageCgroupsMode: rpc.CriuCgMode_IGNORE.Enum(),
	}
	if o.LazyPages {
		opts.LazyPages = proto.Bool(true)
	}
	p := o.Process
	if p == nil {
		if p, err = c.StartRestore(ctx, o); err != nil {
			return RestoreResult{}, fmt.Errorf("criu restore from %s: %w", o.ImagesDir, err)
		}
	}
	cr, err := p.take()
	if err != nil {
		return RestoreResult{}, fmt.Errorf("criu restore from %s: %w", o.ImagesDir, err)
	}
	defer cr.Cleanup()
	if p.logFd >= 0 {
		if o.LogKey == "" {
			return RestoreResult{}, fmt.Errorf("criu restore from %s: RestoreOpts.Log needs LogKey, the log's path on the source", o.ImagesDir)
		}
		opts.InheritFd = append(opts.InheritFd, &rpc.InheritFd{Key: proto.String(strings.TrimPrefix(o.LogKey, "/")), Fd: proto.Int32(int32(p.logFd))})
	}
	// A restore can hang (a lazy restore whose daemon died was seen to
	// wait forever after "Killing processes because of failure"): ctx
	// ends it.
	defer killOnDone(ctx, cr)()
	nfy := &restoreNotify{}
	start := time.Now()
	err = cr.Restore(opts, nfy)
	res := RestoreResult{PID: int(nfy.pid), Duration: time.Since(start)}
	if err != nil {
		return res, c.fail("restore", "from "+o.ImagesDir, o.ImagesDir, RestoreLog, err)
	}
	if res.PID <= 0 {
		return res, fmt.Errorf("%w: restore from %s: CRIU did not say which pid it restored", ErrCRIU, o.ImagesDir)
	}
	if st, err := stats.CriuGetRestoreStats(dir); err == nil {
		res.RestoreTime = time.Duration(st.GetRestoreTime()) * time.Microsecond
	}
	return res, nil
}

// RestoreProcess is the criu process of a later Restore, started ahead of
// it: it already runs in the restore's cgroups and holds its log, so that
// neither its start nor the cgroup attach falls into the frozen time (the
// first attach after a quiet spell waits for an RCU grace period, 10-15 ms
// on cgroup v1). Hand it to one Restore in RestoreOpts.Process; Close it if
// no restore comes. Closing it after the restore is harmless.
type RestoreProcess struct {
	logFd int // the log's fd number in the criu process; -1 without one

	mu sync.Mutex
	cr *gocriu.Criu // nil once taken by a Restore or closed
}

// StartRestore starts the criu process of a Restore with o.Cgroups and
// o.Log (the other options are Restore's).
func (c *Client) StartRestore(ctx context.Context, o RestoreOpts) (*RestoreProcess, error) {
	cr := c.criu()
	p := &RestoreProcess{logFd: -1, cr: cr}
	if o.Log != nil {
		// inherit-fd names an fd of the swrk process: let it inherit the
		// log at the same number (Go opens everything close-on-exec, and
		// go-criu's swrk start takes no extra files). Between the two
		// fcntl calls another fork of this process would inherit the fd
		// too; that costs an open log fd in that child, nothing more.
		fd := int(o.Log.Fd())
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
			return nil, fmt.Errorf("criu restore process: log fd: %w", err)
		}
		err := cr.Prepare()
		unix.CloseOnExec(fd)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrNotAvailable, c.path, err)
		}
		p.logFd = fd
	} else if err := cr.Prepare(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNotAvailable, c.path, err)
	}
	if err := joinCgroups(ctx, cr, o.Cgroups); err != nil {
		cr.Cleanup()
		return nil, err
	}
	return p, nil
}

// take hands the process to its one restore, which ends it: a Close
// after that (or during the restore) does nothing.
func (p *RestoreProcess) take() (*gocriu.Criu, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cr == nil {
		return nil, ErrRestoreProcessUsed
	}
	cr := p.cr
	p.cr = nil
	return cr, nil
}

// Close ends the criu process. It is idempotent.
func (p *RestoreProcess) Close() {
	p.mu.Lock()
	cr := p.cr
	p.cr = nil
	p.mu.Unlock()
	if cr != nil {
		cr.Cleanup()
	}
}

// joinCgroups moves cr's swrk process into cgroups (controller → path below
// the hierarchy's root, see CgroupRoots), creating any that are missing and
// thawing the freezer.
//
// Baton's dumps and restores leave cgroups to Baton: CRIU managing them
// (dumping the source's layout, then recreating and remapping it on the
// target) mounts every v1 hierarchy into a yard on both sides, about 20 ms
// of frozen time each. Instead the target prepares the workload's cgroups
// with their limits (the runner's PrepareCgroups) and the criu swrk process
// joins them before the restore, so that the restored tree, forked from it,
// starts in them, thawed.
func joinCgroups(ctx context.Context, cr *gocriu.Criu, cgroups map[string]string) error {
	if len(cgroups) == 0 {
		return nil
	}
	pid, err := swrkPID(cr)
	if err != nil {
		return fmt.Errorf("joining the target's cgroups: %w", err)
	}
	for ctrl, path := range cgroups {
		dir := filepath.Join(CgroupV1Root, ctrl, path)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("joining the target's cgroups: %w", err)
		}
		if ctrl == "freezer" {
			// A freezer left frozen (an earlier attempt that died) would
			// freeze the criu process itself: the restore would hang.
			if err := (&Freezer{Dir: dir}).Thaw(ctx); err != nil {
				return fmt.Errorf("joining the target's cgroup %s: %w", dir, err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			return fmt.Errorf("joining the target's cgroup %s: %w", dir, err)
		}
	}
	return nil
}

func pipeMaxSizeOK() bool {
	v, err := PipeMaxSize()
	return err == nil && v >= MinPipeMaxSize
}

type restoreNotify struct {
	gocriu.NoNotify
	pid int32
}

func (n *restoreNotify) PostRestore(pid int32) error {
	n.pid = pid
	return nil
}

// PageServer starts a CRIU page server that writes the pages it receives
// into imagesDir, listening on addr ("host:port"; port 0 picks a free one).
// It serves one dump and then exits. stop kills it if it still runs and
// waits for it; it is safe to call more than once. The page server's log is
// imagesDir/page-server.log.
func (c *Client) PageServer(ctx context.Context, imagesDir, addr string) (stop func() error, port int, err error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	host, p, err := splitHostPort(addr)
	if err != nil {
		return nil, 0, fmt.Errorf("criu page server: %w", err)
	}
	dir, err := openDir(imagesDir)
	if err != nil {
		return nil, 0, fmt.Errorf("criu page server: %w", err)
	}
	defer dir.Close()
	opts := &rpc.CriuOpts{
		ImagesDirFd: proto.Int32(int32(dir.Fd())),
		LogLevel:    proto.Int32(int32(c.logLevel)),
		LogFile:     proto.String(PageServerLog),
		Ps:          &rpc.CriuPageServerInfo{Address: proto.String(host), Port: proto.Int32(int32(p))},
	}
	pid, port, err := c.criu().StartPageServerChld(opts)
	if err != nil {
		return nil, 0, c.fail("page-server", "on "+addr, imagesDir, PageServerLog, err)
	}
	// The page server is a daemon (reparented to init): hold it by pidfd so
	// that stop never signals a recycled PID.
	pidfd, perr := unix.PidfdOpen(pid, 0)
	var once sync.Once
	var stopErr error
	stop = func() error {
		once.Do(func() {
			if perr != nil {
				return // already gone
			}
			defer unix.Close(pidfd)
			if err := unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0); err != nil && err != unix.ESRCH {
				stopErr = fmt.Errorf("criu page server pid %d: kill: %w", pid, err)
				return
			}
			stopErr = waitPidfd(pidfd, 5*time.Second)
		})
		return stopErr
	}
	return stop, port, nil
}

// WaitPageServerDone is not needed: a dump to a page server returns only
// after the server acknowledged the last pages (PS_IOV_FLUSH_N_CLOSE).

// waitPidfd waits until the process behind pidfd has exited.
func waitPidfd(pidfd int, d time.Duration) error {
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return errors.New("process did not exit in time")
		}
		n, err := unix.Poll(fds, int(left/time.Millisecond)+1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
	}
}

// fail builds the error of a failed CRIU call: what, on what, CRIU's own
// message, and the tail of its log.
func (c *Client) fail(op, what, imagesDir, logName string, err error) error {
	logPath := filepath.Join(imagesDir, logName)
	tail := LogTail(logPath, 12)
	if tail == "" {
		tail = "(no log at " + logPath + ")"
	}
	// go-criu's message is CRIU's first logged error, which on this
	// kind of machine is the harmless RLIMIT_NOFILE warning: lead with
	// the first real error of the log instead.
	msg := err.Error()
	if first := firstError(logPath); first != "" {
		msg = first
	}
	return fmt.Errorf("%w: %s %s: %s; log %s ends:\n%s", ErrCRIU, op, what, msg, logPath, tail)
}

// firstError returns the first "Error" line of a CRIU log that is not the
// harmless RLIMIT_NOFILE one, without its timestamp.
func firstError(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if i := strings.Index(l, "Error"); i >= 0 && !strings.Contains(l, "RLIMIT_NOFILE") {
			return l[i:]
		}
	}
	return ""
}

// LogTail returns the error lines and the last n lines of a CRIU log, the
// part that explains a failure.
func LogTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines, errs []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.Contains(l, "Error") && !strings.Contains(l, "RLIMIT_NOFILE") {
			if len(errs) < 8 {
				errs = append(errs, l)
			}
		}
		lines = append(lines, l)
		if len(lines) > 4*n {
			lines = lines[len(lines)-n:]
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	out := lines
	if len(errs) > 0 {
		out = append(append(errs, "..."), lines...)
	}
	return strings.Join(out, "\n")
}

func openDir(path string) (*os.File, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("images dir: %w", err)
	}
	return os.Open(path)
}

func splitHostPort(addr string) (string, int, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.Atoi(ps)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", addr)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, p, nil
}

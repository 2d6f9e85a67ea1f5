package criu

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	gocriu "github.com/checkpoint-restore/go-criu/v7"
	"github.com/checkpoint-restore/go-criu/v7/rpc"
	"github.com/checkpoint-restore/go-criu/v7/stats"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
)

// Post-copy (lazy pages), as migrate/POSTCOPY.md found it safe on Baton's
// machines:
//
//	source: Freeze (cgroup) ─▶ LazyDump: images without memory, then a page
//	        server that serves the frozen source's pages; --leave-stopped and
//	        --freeze-cgroup keep the source frozen whatever CRIU reports
//	target: LazyPages daemon (connects to that page server) ─▶ Restore{LazyPages}
//	        ─▶ the copy runs; the daemon fills its pages on demand and in the
//	        background ─▶ LazyPagesDaemon.Wait: every page arrived?
//
// Commit (kill the source) only after Wait said yes; abort kills the target's
// copy and daemon first, then ends the dump (LazyDumpRun.Kill) and thaws.

// Sentinel errors of post-copy; check them with errors.Is.
var (
	// ErrPipeMaxSize: fs.pipe-max-size is below MinPipeMaxSize and this
	// node cannot raise it. CRIU's lazy page server then fails on its
	// first page request (see migrate/POSTCOPY.md).
	ErrPipeMaxSize = errors.New("criu: fs.pipe-max-size too small for lazy pages")
	// ErrIncomplete: the lazy-pages daemon ended without every page of a
	// live task reaching the target.
	ErrIncomplete = errors.New("criu: lazy page transfer incomplete")
)

// LazyPagesLog is the lazy-pages daemon's log, in the target's images dir.
const LazyPagesLog = "lazy-pages.log"

// PipeMaxSizeFile is the sysctl fs.pipe-max-size.
const PipeMaxSizeFile = "/proc/sys/fs/pipe-max-size"

// MinPipeMaxSize is the smallest fs.pipe-max-size with which CRIU 4.1's lazy
// page server works without CAP_SYS_RESOURCE: its tee pipe is 819 pages,
// which the kernel rounds up to 4 MiB.
const MinPipeMaxSize = 4 << 20

// PipeMaxSize returns fs.pipe-max-size.
func PipeMaxSize() (int64, error) {
	b, err := os.ReadFile(PipeMaxSizeFile)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// EnsurePipeMaxSize raises fs.pipe-max-size to MinPipeMaxSize if it is
// lower (it only ever raises it) and returns the value in force. It fails
// with ErrPipeMaxSize when the value stays too low.
func EnsurePipeMaxSize() (int64, error) {
	v, err := PipeMaxSize()
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrPipeMaxSize, err)
	}
	if v >= MinPipeMaxSize {
		return v, nil
	}
	if werr := os.WriteFile(PipeMaxSizeFile, []byte(strconv.Itoa(MinPipeMaxSize)), 0); werr != nil {
		return v, fmt.Errorf("%w: it is %d and raising it to %d failed (%v): run sysctl -w fs.pipe-max-size=%d as root", ErrPipeMaxSize, v, MinPipeMaxSize, werr, MinPipeMaxSize)
	}
	if v, err = PipeMaxSize(); err != nil || v < MinPipeMaxSize {
		return v, fmt.Errorf("%w: it is %d after setting %d", ErrPipeMaxSize, v, MinPipeMaxSize)
	}
	return v, nil
}

// LazyDumpRun is a post-copy dump in progress: the images without memory
// are written and CRIU's page server serves the frozen source's pages.
type LazyDumpRun struct {
	// Addr is the page server's "host:port" for the target's daemon.
	Addr string
	// ImagesDir holds the images to send to the target.
	ImagesDir string

	pidfd int // the criu swrk process
	done  chan struct{}
	res   DumpResult
	err   error
	once  sync.Once
}

// LazyDump starts a post-copy dump of o.PID: it writes the images but the
// memory into o.ImagesDir, then serves the pages on o.PageServer ("host:port";
// port 0 picks a free one) and returns once the page server listens. The
// source is left stopped (and, with o.FreezeCgroup frozen beforehand,
// frozen) whatever the transfer's outcome: only the caller ends it, by a
// commit (kill) or an abort (thaw). Wait reports the end of the transfer.
//
// CRIU's RPC takes no listening address in lazy mode: the page server binds
// every interface of the source on the chosen port; Addr names o's host.
func (c *Client) LazyDump(ctx context.Context, o DumpOpts) (*LazyDumpRun, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if o.PID <= 0 {
		return nil, fmt.Errorf("criu lazy dump: no pid given")
	}
	if v, err := PipeMaxSize(); err != nil || v < MinPipeMaxSize {
		return nil, fmt.Errorf("criu lazy dump of pid %d: %w: it is %d, need %d (the agent raises it at start; was it lowered since?)", o.PID, ErrPipeMaxSize, v, MinPipeMaxSize)
	}
	host, port, err := splitHostPort(o.PageServer)
	if err != nil {
		return nil, fmt.Errorf("criu lazy dump of pid %d: page server: %w", o.PID, err)
	}
	if port == 0 {
		if port, err = freePort(host); err != nil {
			return nil, fmt.Errorf("criu lazy dump of pid %d: %w", o.PID, err)
		}
	}
	dir, err := openDir(o.ImagesDir)
	if err != nil {
		return nil, fmt.Errorf("criu lazy dump of pid %d: %w", o.PID, err)
	}
	// CRIU writes one byte to the status fd when its page server listens
	// (it reopens it through /proc/<this process>/fd).
	sr, sw, err := os.Pipe()
	if err != nil {
		dir.Close()
		return nil, fmt.Errorf("criu lazy dump of pid %d: %w", o.PID, err)
	}
	opts := &rpc.CriuOpts{
		ImagesDirFd: proto.Int32(int32(dir.Fd())),
		Pid:         proto.Int32(int32(o.PID)),
		LogLevel:    proto.Int32(int32(c.logLevel)),
		LogFile:     proto.String(DumpLog),
		ShellJob:    proto.Bool(o.ShellJob),
		// No cgroup layout in the images (see joinCgroups).
		ManageCgroups:     proto.Bool(false),
		ManageCgroupsMode: rpc.CriuCgMode_IGNORE.Enum(),
		LazyPages:         proto.Bool(true),
		// Whatever happens to the transfer, the source is not killed (the
		// default) but left stopped: only Baton decides its fate.
		LeaveStopped: proto.Bool(true),
		Ps:           &rpc.CriuPageServerInfo{Port: proto.Int32(int32(port))},
		StatusFd:     proto.Int32(int32(sw.Fd())),
	}
	if o.FreezeCgroup != "" {
		opts.FreezeCgroup = proto.String(o.FreezeCgroup)
	}
	if o.NetworkLockSkip {
		opts.NetworkLock = rpc.CriuNetworkLockMethod_SKIP.Enum()
	}
	cr := c.criu()
	if err := cr.Prepare(); err != nil {
		dir.Close()
		sr.Close()
		sw.Close()
		return nil, fmt.Errorf("%w: %s: %v", ErrNotAvailable, c.path, err)
	}
	pid, err := swrkPID(cr)
	var pidfd int
	if err == nil {
		pidfd, err = unix.PidfdOpen(pid, 0)
	}
	if err != nil {
		cr.Cleanup()
		dir.Close()
		sr.Close()
		sw.Close()
		return nil, fmt.Errorf("criu lazy dump of pid %d: holding the criu process: %w", o.PID, err)
	}
	run := &LazyDumpRun{Addr: net.JoinHostPort(host, strconv.Itoa(port)), ImagesDir: o.ImagesDir, pidfd: pidfd, done: make(chan struct{})}
	start := time.Now()
	go func() {
		defer close(run.done)
		defer dir.Close()
		defer sw.Close()
		err := cr.Dump(opts, nil)
		cr.Cleanup()
		run.res.Duration = time.Since(start)
		if err != nil {
			run.err = c.fail("lazy dump", fmt.Sprintf("pid %d", o.PID), o.ImagesDir, DumpLog, err)
			return
		}
		if st, err := stats.CriuGetDumpStats(dir); err == nil {
			run.res.FrozenTime = time.Duration(st.GetFrozenTime()) * time.Microsecond
			run.res.MemdumpTime = time.Duration(st.GetMemdumpTime()) * time.Microsecond
			run.res.PagesWritten = st.GetPagesWritten()
			run.res.PagesScanned = st.GetPagesScanned()
		}
	}()
	ready := make(chan error, 1)
	go func() {
		var b [1]byte
		_, err := sr.Read(b[:])
		ready <- err
	}()
	select {
	case err = <-ready:
	case <-run.done:
		err = run.err
		if err == nil {
			err = fmt.Errorf("%w: lazy dump of pid %d ended before its page server listened", ErrCRIU, o.PID)
		}
	case <-ctx.Done():
		err = ctx.Err()
	}
	sr.Close()
	if err != nil {
		run.Kill()
		return nil, fmt.Errorf("criu lazy dump of pid %d: %w", o.PID, err)
	}
	return run, nil
}

// Done is closed when the dump has ended (the transfer ended, or Kill).
func (r *LazyDumpRun) Done() <-chan struct{} { return r.done }

// Wait waits until the dump ends and returns its outcome. CRIU's verdict is
// not the migration's: a transfer cut short by a clean close counts as a
// success for CRIU. Only the target's LazyPagesDaemon.Wait can say that
// every page arrived.
func (r *LazyDumpRun) Wait(ctx context.Context) (DumpResult, error) {
	select {
	case <-r.done:
		return r.res, r.err
	case <-ctx.Done():
		return DumpResult{}, ctx.Err()
	}
}

// Kill ends the dump at once (SIGKILL to its criu process) and waits for
// it. A killed dump lets go of the source's tasks: unless their freezer
// cgroup is frozen they run again. Safe to call more than once.
func (r *LazyDumpRun) Kill() {
	r.once.Do(func() {
		_ = unix.PidfdSendSignal(r.pidfd, unix.SIGKILL, nil, 0)
		<-r.done
		unix.Close(r.pidfd)
	})
}

// swrkPID returns the PID of the criu swrk process cr.Prepare started.
// go-criu keeps its exec.Cmd unexported and offers no way to stop a call in
// flight; a lazy dump's page server waits for its client forever, so an
// abort must be able to kill it.
func swrkPID(cr *gocriu.Criu) (int, error) {
	f := reflect.ValueOf(cr).Elem().FieldByName("swrkCmd")
	if !f.IsValid() || f.Type() != reflect.TypeOf((*exec.Cmd)(nil)) {
		return 0, errors.New("go-criu's Criu has no swrkCmd *exec.Cmd field any more: update swrkPID")
	}
	cmd := reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Interface().(*exec.Cmd)
	if cmd == nil || cmd.Process == nil {
		return 0, errors.New("criu swrk not started")
	}
	return cmd.Process.Pid, nil
}

// killOnDone kills cr's swrk process if ctx ends before the returned stop
// is called. cr must be prepared.
func killOnDone(ctx context.Context, cr *gocriu.Criu) (stop func()) {
	pid, err := swrkPID(cr)
	if err != nil || ctx.Done() == nil {
		return func() {}
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		select {
		case <-ctx.Done():
			_ = unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
		case <-done:
		}
	}()
	return func() {
		close(done)
		<-finished
		unix.Close(pidfd)
	}
}

func freePort(host string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("finding a free port on %s: %w", host, err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// LazyPagesDaemon is CRIU's lazy-pages daemon on the target: it connects to
// the source's page server and fills the restored copy's memory.
type LazyPagesDaemon struct {
	ImagesDir string
	cmd       *exec.Cmd
	done      chan struct{}
	waitErr   error
}

// LazyPages starts `criu lazy-pages --page-server` for the images in
// imagesDir against the source's page server at pageServer ("host:port")
// and returns once it is ready for Restore with LazyPages (its socket is in
// imagesDir). CRIU's RPC has no request for this daemon, so it is the one
// CRIU call Baton runs from the command line. Its log is imagesDir/
// lazy-pages.log.
func (c *Client) LazyPages(ctx context.Context, imagesDir, pageServer string) (*LazyPagesDaemon, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	host, port, err := splitHostPort(pageServer)
	if err != nil || port == 0 {
		return nil, fmt.Errorf("criu lazy-pages: page server %q: want host:port", pageServer)
	}
	sr, sw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("criu lazy-pages: %w", err)
	}
	defer sr.Close()
	cmd := exec.Command(c.path, "lazy-pages", "--page-server", "--address", host, "--port", strconv.Itoa(port),
		"-D", imagesDir, "-W", imagesDir, "-o", LazyPagesLog, "-v"+strconv.Itoa(c.logLevel), "--status-fd", "3")
	cmd.ExtraFiles = []*os.File{sw}
	if err := cmd.Start(); err != nil {
		sw.Close()
		return nil, fmt.Errorf("%w: %s lazy-pages: %v", ErrNotAvailable, c.path, err)
	}
	sw.Close()
	d := &LazyPagesDaemon{ImagesDir: imagesDir, cmd: cmd, done: make(chan struct{})}
	go func() { d.waitErr = cmd.Wait(); close(d.done) }()
	ready := make(chan error, 1)
	go func() {
		var b [1]byte
		_, err := sr.Read(b[:]) // EOF: it exited before it was ready
		ready <- err
	}()
	select {
	case err = <-ready:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		d.Kill()
		return nil, fmt.Errorf("%w: lazy-pages for %s: not ready: %v; log %s ends:\n%s", ErrCRIU, pageServer, err,
			filepath.Join(imagesDir, LazyPagesLog), LogTail(filepath.Join(imagesDir, LazyPagesLog), 12))
	}
	return d, nil
}

// Kill stops the daemon at once and waits for it. The restored copy then
// reads zeros for every page it has not got: kill it too, first if you can.
func (d *LazyPagesDaemon) Kill() {
	_ = d.cmd.Process.Kill()
	<-d.done
}

// LastProgress is when the daemon last logged anything (at log level 4 it
// logs every page request and every event): a daemon cut off from the
// source's page server, or hung, stops logging.
func (d *LazyPagesDaemon) LastProgress() time.Time {
	fi, err := os.Stat(filepath.Join(d.ImagesDir, LazyPagesLog))
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// PID is the daemon's process id (fault-injection tests kill it).
func (d *LazyPagesDaemon) PID() int { return d.cmd.Process.Pid }

// Wait waits until the daemon ends and says whether every page arrived: it
// exited 0, and every task it served either got all its pages or exited on
// its own (CRIU logs EXIT for it; a short-lived child may end mid-transfer).
// stall bounds how long the daemon may go without logging anything (no
// page, no event) before it counts as cut off: it is killed and Wait fails.
// Whether the restored root still runs is the caller's check. It returns
// the bytes transferred.
func (d *LazyPagesDaemon) Wait(ctx context.Context, stall time.Duration) (int64, error) {
	logPath := filepath.Join(d.ImagesDir, LazyPagesLog)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-d.done:
			return d.verdict()
		case <-ctx.Done():
			d.Kill()
			return 0, fmt.Errorf("lazy-pages: %w", ctx.Err())
		case <-tick.C:
			if last := d.LastProgress(); stall > 0 && !last.IsZero() && time.Since(last) > stall {
				d.Kill()
				return 0, fmt.Errorf("%w: lazy-pages: no progress for %s (link to the source's page server cut?); killed; log %s ends:\n%s",
					ErrIncomplete, stall, logPath, LogTail(logPath, 12))
			}
		}
	}
}

var (
	summaryRE = regexp.MustCompile(`uffd: (\d+)-\d+: UFFD transferred pages: \((\d+)/(\d+)\)`)
	exitRE    = regexp.MustCompile(`uffd: (\d+)-\d+: EXIT`)
)

func (d *LazyPagesDaemon) verdict() (int64, error) {
	logPath := filepath.Join(d.ImagesDir, LazyPagesLog)
	if d.waitErr != nil {
		return 0, fmt.Errorf("%w: lazy-pages: %v; log %s ends:\n%s", ErrIncomplete, d.waitErr, logPath, LogTail(logPath, 12))
	}
	pages, short, err := transferSummary(logPath)
	if err != nil {
		return 0, fmt.Errorf("%w: lazy-pages: %v", ErrIncomplete, err)
	}
	if short != "" {
		return 0, fmt.Errorf("%w: lazy-pages exited 0 but %s; log %s", ErrIncomplete, short, logPath)
	}
	return pages * int64(os.Getpagesize()), nil
}

// transferSummary reads a lazy-pages log: the pages transferred, and a
// description of every task that got fewer than all its pages without
// having exited ("" if none).
func transferSummary(logPath string) (pages int64, short string, err error) {
	f, err := os.Open(logPath)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	exited := map[string]bool{}
	type sum struct{ pid, got, want string }
	var sums []sum
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if m := exitRE.FindStringSubmatch(l); m != nil {
			exited[m[1]] = true
		} else if m := summaryRE.FindStringSubmatch(l); m != nil {
			sums = append(sums, sum{m[1], m[2], m[3]})
		}
	}
	if err := sc.Err(); err != nil {
		return 0, "", err
	}
	if len(sums) == 0 {
		return 0, "", fmt.Errorf("no transfer summary in %s", logPath)
	}
	var bad []string
	for _, s := range sums {
		got, _ := strconv.ParseInt(s.got, 10, 64)
		want, _ := strconv.ParseInt(s.want, 10, 64)
		pages += got
		if got != want && !exited[s.pid] {
			bad = append(bad, fmt.Sprintf("task %s got %d of %d pages", s.pid, got, want))
		}
	}
	return pages, strings.Join(bad, ", "), nil
}

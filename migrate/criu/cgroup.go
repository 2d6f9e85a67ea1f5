package criu

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// CgroupV1Root is where the v1 hierarchies are mounted.
const CgroupV1Root = "/sys/fs/cgroup"

// Controllers are the v1 hierarchies a migrated workload's cgroups are
// remapped in: the runner's (memory, cpu, pids) and the freezer of the
// rollback. "cpu" is CRIU's name for the hierarchy as /proc/PID/cgroup names
// it ("cpu,cpuacct" on Debian).
func Controllers() []string {
	ctrls := []string{"memory", "pids", "freezer"}
	if target, err := os.Readlink(filepath.Join(CgroupV1Root, "cpu")); err == nil {
		ctrls = append(ctrls, filepath.Base(target))
	} else {
		ctrls = append(ctrls, "cpu")
	}
	return ctrls
}

// CgroupRoots maps every controller of Controllers to path (for example
// "baton/<target-node>/<id>"), for RestoreOpts.Cgroups.
func CgroupRoots(path string) map[string]string {
	m := map[string]string{}
	for _, c := range Controllers() {
		m[c] = "/" + strings.TrimPrefix(path, "/")
	}
	return m
}

// Freezer is a v1 freezer cgroup directory.
type Freezer struct{ Dir string }

// NewFreezer returns the freezer group at path below the freezer hierarchy
// ("baton/<node>/<id>").
func NewFreezer(path string) *Freezer {
	return &Freezer{Dir: filepath.Join(CgroupV1Root, "freezer", path)}
}

// Create makes the group (and its parents).
func (f *Freezer) Create() error {
	if err := os.MkdirAll(f.Dir, 0o755); err != nil {
		return fmt.Errorf("freezer %s: %w", f.Dir, err)
	}
	return nil
}

// Add moves the processes pids into the group.
func (f *Freezer) Add(pids ...int) error {
	for _, pid := range pids {
		if err := os.WriteFile(filepath.Join(f.Dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			return fmt.Errorf("freezer %s: add pid %d: %w", f.Dir, pid, err)
		}
	}
	return nil
}

// AddGroup moves every process of another v1 cgroup dir (the workload's
// memory group: it holds the whole tree) into the freezer group. Processes
// come and go meanwhile (a shell's short-lived children): one that exits is
// skipped, and the move is repeated until every process of dir is in the
// freezer group (children forked after their parent moved follow it).
func (f *Freezer) AddGroup(dir string) error {
	for range 100 {
		pids, err := Procs(dir)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return fmt.Errorf("freezer %s: no process in %s", f.Dir, dir)
		}
		in, err := Procs(f.Dir)
		if err != nil {
			return err
		}
		have := make(map[int]bool, len(in))
		for _, p := range in {
			have[p] = true
		}
		moved := false
		for _, pid := range pids {
			if have[pid] {
				continue
			}
			moved = true
			err := os.WriteFile(filepath.Join(f.Dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0)
			if err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("freezer %s: add pid %d: %w", f.Dir, pid, err)
			}
		}
		if !moved {
			return nil
		}
	}
	return fmt.Errorf("freezer %s: the processes of %s keep changing", f.Dir, dir)
}

// State returns FROZEN, FREEZING or THAWED.
func (f *Freezer) State() (string, error) {
	b, err := os.ReadFile(filepath.Join(f.Dir, "freezer.state"))
	if err != nil {
		return "", fmt.Errorf("freezer %s: %w", f.Dir, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func (f *Freezer) set(ctx context.Context, want string) error {
	if err := os.WriteFile(filepath.Join(f.Dir, "freezer.state"), []byte(want), 0); err != nil {
		return fmt.Errorf("freezer %s: set %s: %w", f.Dir, want, err)
	}
	for d := 100 * time.Microsecond; ; d = min(2*d, 10*time.Millisecond) {
		st, err := f.State()
		if err != nil {
			return err
		}
		if st == want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("freezer %s: still %s, want %s: %w", f.Dir, st, want, ctx.Err())
		case <-time.After(d):
		}
		// A FREEZING group may need the write again (tasks that were
		// running when it started).
		os.WriteFile(filepath.Join(f.Dir, "freezer.state"), []byte(want), 0)
	}
}

// Freeze stops every process of the group and waits until it is FROZEN.
func (f *Freezer) Freeze(ctx context.Context) error { return f.set(ctx, "FROZEN") }

// Thaw resumes the group (the rollback of a migration). A missing group is an
// error wrapping os.ErrNotExist.
func (f *Freezer) Thaw(ctx context.Context) error { return f.set(ctx, "THAWED") }

// Kill sends SIGKILL to every process of the group, thaws it (frozen
// processes die only once thawed) and waits until it is empty, then removes
// it. This is the commit of a migration on the source.
func (f *Freezer) Kill(ctx context.Context) error {
	for {
		pids, err := Procs(f.Dir)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, pid := range pids {
			unix.Kill(pid, unix.SIGKILL)
		}
		f.Thaw(ctx)
		if len(pids) == 0 {
			if err := unix.Rmdir(f.Dir); err != nil && err != unix.ENOENT {
				if err == unix.EBUSY {
					goto wait
				}
				return fmt.Errorf("freezer %s: remove: %w", f.Dir, err)
			}
			return nil
		}
	wait:
		select {
		case <-ctx.Done():
			return fmt.Errorf("freezer %s: processes left %v: %w", f.Dir, pids, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Remove removes the (empty) group.
func (f *Freezer) Remove() error {
	if err := unix.Rmdir(f.Dir); err != nil && err != unix.ENOENT {
		return fmt.Errorf("freezer %s: remove: %w", f.Dir, err)
	}
	return nil
}

// Procs lists the processes of a v1 cgroup dir.
func Procs(dir string) ([]int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", dir, err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if p, err := strconv.Atoi(f); err == nil {
			pids = append(pids, p)
		}
	}
	return pids, nil
}

// RSS returns the resident memory of process pid in bytes (from
// /proc/PID/smaps_rollup, or statm where that is missing).
func RSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "Rss:"); ok {
				kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				if err != nil {
					return 0, fmt.Errorf("rss of pid %d: %q: %w", pid, v, err)
				}
				return kb << 10, nil
			}
		}
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", pid))
	if err != nil {
		return 0, fmt.Errorf("rss of pid %d: %w", pid, err)
	}
	fs := strings.Fields(string(b))
	if len(fs) < 2 {
		return 0, fmt.Errorf("rss of pid %d: statm %q", pid, b)
	}
	pages, err := strconv.ParseInt(fs[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("rss of pid %d: statm %q: %w", pid, b, err)
	}
	return pages * int64(os.Getpagesize()), nil
}

// CopyImages copies the image files of src into dst (created if missing),
// skipping files dst already has (the pages a page server wrote there) and
// CRIU's logs and stats. It returns the bytes copied. It is the local
// stand-in for the transfer that the agents do between nodes.
func CopyImages(src, dst string) (int64, error) {
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return 0, err
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || strings.HasSuffix(name, ".log") || strings.HasPrefix(name, "stats-") {
			continue
		}
		if _, err := os.Lstat(filepath.Join(dst, name)); err == nil {
			continue
		}
		n, err := copyFile(filepath.Join(src, name), filepath.Join(dst, name))
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func copyFile(src, dst string) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// UnmountYards removes the cgroup "yards" (.criu.cgyard.*: a tmpfs with the
// v1 hierarchies mounted in it) that a CRIU restore killed in flight leaves
// mounted below dir, deepest first, and returns how many mounts it removed.
// A restore that ends normally removes its own yard.
func UnmountYards(dir string) (int, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return 0, err
	}
	prefix := strings.TrimSuffix(filepath.Clean(dir), "/") + "/"
	var points []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		mp := f[4]
		if strings.HasPrefix(mp, prefix) && strings.Contains(mp, "/.criu.cgyard.") {
			points = append(points, mp)
		}
	}
	// Deeper mount points are longer: unmount them before their parent.
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	var errs []error
	for _, mp := range points {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
			errs = append(errs, fmt.Errorf("unmount %s: %w", mp, err))
		}
	}
	return len(points), errors.Join(errs...)
}

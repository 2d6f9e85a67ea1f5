package cgroupv1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultRoot is where the v1 hierarchies are mounted on Baton's machines.
const DefaultRoot = "/sys/fs/cgroup"

// Controllers are the v1 controllers every Group lives in.
var Controllers = []string{"memory", "cpu", "pids"}

// procsController is the hierarchy whose cgroup.procs says which processes
// belong to a group.
const procsController = "pids"

// ErrUnavailable is returned when a controller this package needs is not
// mounted as a cgroup v1 hierarchy.
var ErrUnavailable = errors.New("cgroupv1: controller not mounted")

// ErrInvalidPath is returned for group paths that are not clean relative
// paths below the hierarchy roots.
var ErrInvalidPath = errors.New("cgroupv1: invalid group path")

// Group is one cgroup, at the same relative path in every controller of
// Controllers.
type Group struct {
	root string
	path string
}

// New returns the group at path (relative, e.g. "baton/node1/web-1") below the
// hierarchies mounted under root (DefaultRoot if empty). It touches nothing.
func New(root, path string) (*Group, error) {
	if root == "" {
		root = DefaultRoot
	}
	clean := filepath.Clean(path)
	if path == "" || filepath.IsAbs(path) || clean != path || clean == "." || strings.HasPrefix(clean, "..") {
		return nil, fmt.Errorf("%w: %q: want a clean relative path such as baton/node1/web", ErrInvalidPath, path)
	}
	return &Group{root: root, path: clean}, nil
}

// Path returns the group's path relative to the hierarchy roots.
func (g *Group) Path() string { return g.path }

// Dir returns the group's directory in controller's hierarchy.
func (g *Group) Dir(controller string) string {
	return filepath.Join(g.root, controller, g.path)
}

// Available reports whether every controller of Controllers is mounted as a
// cgroup v1 hierarchy under root (DefaultRoot if empty).
func Available(root string) error {
	if root == "" {
		root = DefaultRoot
	}
	for _, c := range Controllers {
		dir := filepath.Join(root, c)
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err != nil {
			return fmt.Errorf("%w: %s: %v (the agent needs the memory, cpu and pids v1 hierarchies)", ErrUnavailable, dir, err)
		}
		if st.Type != unix.CGROUP_SUPER_MAGIC {
			return fmt.Errorf("%w: %s is not a cgroup v1 mount (the agent needs the memory, cpu and pids v1 hierarchies)", ErrUnavailable, dir)
		}
	}
	return nil
}

// Create makes the group (and its parents) in every controller.
func (g *Group) Create() error {
	if err := Available(g.root); err != nil {
		return err
	}
	for _, c := range Controllers {
		if err := os.MkdirAll(g.Dir(c), 0o755); err != nil {
			return fmt.Errorf("cgroup %s: create in %s: %w", g.path, c, err)
		}
	}
	return nil
}

func (g *Group) write(controller, file, value string) error {
	p := filepath.Join(g.Dir(controller), file)
	// cgroup files take one value per write(2); os.WriteFile does exactly that.
	if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
		return fmt.Errorf("cgroup %s: write %q to %s: %w", g.path, value, p, err)
	}
	return nil
}

func (g *Group) read(controller, file string) (string, error) {
	b, err := os.ReadFile(filepath.Join(g.Dir(controller), file))
	if err != nil {
		return "", fmt.Errorf("cgroup %s: %w", g.path, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// SetMemoryLimit writes memory.limit_in_bytes.
// ResidentBytes is the resident memory (anonymous and swap-cache pages,
// "total_rss" of memory.stat) of every process in the group.
func (g *Group) ResidentBytes() (int64, error) {
	stat, err := g.read("memory", "memory.stat")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(stat, "\n") {
		if v, ok := strings.CutPrefix(line, "total_rss "); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("cgroup %s: no total_rss in memory.stat", g.path)
}

func (g *Group) SetMemoryLimit(bytes int64) error {
	if bytes <= 0 {
		return fmt.Errorf("cgroup %s: memory limit %d: want a positive number of bytes", g.path, bytes)
	}
	return g.write("memory", "memory.limit_in_bytes", strconv.FormatInt(bytes, 10))
}

// minQuotaUS is the smallest cpu.cfs_quota_us the kernel accepts.
const minQuotaUS = 1000

// SetCPUQuota limits the group to millis thousandths of a CPU by writing
// cpu.cfs_quota_us relative to the group's cpu.cfs_period_us. Very small
// values are raised to the kernel's minimum quota of 1 ms per period.
func (g *Group) SetCPUQuota(millis int64) error {
	if millis <= 0 {
		return fmt.Errorf("cgroup %s: cpu quota %d millis: want a positive number", g.path, millis)
	}
	s, err := g.read("cpu", "cpu.cfs_period_us")
	if err != nil {
		return err
	}
	period, err := strconv.ParseInt(s, 10, 64)
	if err != nil || period <= 0 {
		return fmt.Errorf("cgroup %s: cpu.cfs_period_us is %q, not a positive number", g.path, s)
	}
	quota := max(millis*period/1000, minQuotaUS)
	return g.write("cpu", "cpu.cfs_quota_us", strconv.FormatInt(quota, 10))
}

// Add moves process pid (with all its threads) into the group in every
// controller.
func (g *Group) Add(pid int) error {
	for _, c := range Controllers {
		if err := g.write(c, "cgroup.procs", strconv.Itoa(pid)); err != nil {
			return err
		}
	}
	return nil
}

// Procs lists the processes in the group (host PIDs), as its pids
// hierarchy's cgroup.procs says. A group that does not exist has none.
func (g *Group) Procs() ([]int, error) {
	b, err := os.ReadFile(filepath.Join(g.Dir(procsController), "cgroup.procs"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: list processes: %w", g.path, err)
	}
	var pids []int
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		pid, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
		if err != nil {
			return nil, fmt.Errorf("cgroup %s: cgroup.procs line %q: %w", g.path, sc.Text(), err)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// Contains reports whether process pid is in the group (per its pids
// hierarchy), reading /proc/PID/cgroup.
func (g *Group) Contains(pid int) (bool, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("cgroup %s: read cgroups of pid %d: %w", g.path, pid, err)
	}
	want := "/" + g.path
	for line := range strings.SplitSeq(string(b), "\n") {
		// hierarchy-ID:controller-list:path
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for c := range strings.SplitSeq(parts[1], ",") {
			if c == procsController {
				return parts[2] == want, nil
			}
		}
	}
	return false, nil
}

// pollInterval is how often Kill and Remove look again.
const pollInterval = 10 * time.Millisecond

// Kill sends SIGKILL to every process in the group until it is empty or ctx
// ends. Each process is pinned with a pidfd and checked to still be in the
// group before it is signalled, so a PID reused by an unrelated process after
// cgroup.procs was read is never killed.
func (g *Group) Kill(ctx context.Context) error {
	for {
		pids, err := g.Procs()
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			if err := g.killOne(pid); err != nil {
				return err
			}
		}
		if err := sleep(ctx, pollInterval); err != nil {
			return fmt.Errorf("cgroup %s: %d processes still alive (%v): %w", g.path, len(pids), pids, err)
		}
	}
}

func (g *Group) killOne(pid int) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cgroup %s: pidfd of pid %d: %w", g.path, pid, err)
	}
	defer unix.Close(fd)
	in, err := g.Contains(pid)
	if err != nil || !in {
		return err
	}
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("cgroup %s: kill pid %d: %w", g.path, pid, err)
	}
	return nil
}

// removeTimeout bounds Remove when ctx has no deadline.
const removeTimeout = 10 * time.Second

// Remove deletes the group's directories. The kernel refuses (EBUSY) while
// processes remain, which can last a moment after they were killed, so it
// retries until ctx ends (at most removeTimeout). A group already gone is not
// an error. Parents are left alone: other groups share them.
func (g *Group) Remove(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, removeTimeout)
	defer cancel()
	for _, c := range Controllers {
		dir := g.Dir(c)
		for {
			err := unix.Rmdir(dir)
			if err == nil || errors.Is(err, unix.ENOENT) {
				break
			}
			if !errors.Is(err, unix.EBUSY) {
				return fmt.Errorf("cgroup %s: remove %s: %w", g.path, dir, err)
			}
			if err := sleep(ctx, pollInterval); err != nil {
				return fmt.Errorf("cgroup %s: remove %s: still busy: %w", g.path, dir, err)
			}
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

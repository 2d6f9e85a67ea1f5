package cgroupv1

import (
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

// FreezerController is the v1 hierarchy of the freezer. It is not one of
// Controllers: a workload joins its freezer group only when it is migrated
// away (see runner.Runner.Freeze), and a restored workload is put in one by
// CRIU's cgroup remapping.
const FreezerController = "freezer"

// FreezerDir returns the group's directory in the freezer hierarchy.
func (g *Group) FreezerDir() string { return g.Dir(FreezerController) }

// HasFreezer reports whether the group has a freezer directory.
func (g *Group) HasFreezer() bool {
	_, err := os.Stat(filepath.Join(g.FreezerDir(), "freezer.state"))
	return err == nil
}

// FreezerState returns FROZEN, FREEZING or THAWED; an error wrapping
// fs.ErrNotExist if the group has no freezer directory.
func (g *Group) FreezerState() (string, error) {
	b, err := os.ReadFile(filepath.Join(g.FreezerDir(), "freezer.state"))
	if err != nil {
		return "", fmt.Errorf("cgroup %s: freezer: %w", g.path, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// JoinFreezer creates the group's freezer directory and moves every process
// of the group (per its pids hierarchy) into it, repeating until none is
// left out: a shell's short-lived children come and go meanwhile, and those
// forked after their parent moved follow it.
func (g *Group) JoinFreezer() error {
	dir := g.FreezerDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cgroup %s: create freezer: %w", g.path, err)
	}
	for range 100 {
		pids, err := g.Procs()
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return fmt.Errorf("cgroup %s: no process to freeze", g.path)
		}
		in, err := procsOf(dir)
		if err != nil {
			return err
		}
		moved := false
		for _, pid := range pids {
			if in[pid] {
				continue
			}
			moved = true
			err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0)
			if err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("cgroup %s: freezer: add pid %d: %w", g.path, pid, err)
			}
		}
		if !moved {
			return nil
		}
	}
	return fmt.Errorf("cgroup %s: the processes keep changing, cannot move them into the freezer", g.path)
}

func procsOf(dir string) (map[int]bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", dir, err)
	}
	m := map[int]bool{}
	for _, f := range strings.Fields(string(b)) {
		if p, err := strconv.Atoi(f); err == nil {
			m[p] = true
		}
	}
	return m, nil
}

// Freeze stops every process of the group's freezer and waits until it is
// FROZEN.
func (g *Group) Freeze(ctx context.Context) error { return g.setFreezer(ctx, "FROZEN") }

// Thaw resumes the group's freezer. A group without a freezer directory is
// not an error: nothing of it is frozen.
func (g *Group) Thaw(ctx context.Context) error {
	err := g.setFreezer(ctx, "THAWED")
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func (g *Group) setFreezer(ctx context.Context, want string) error {
	file := filepath.Join(g.FreezerDir(), "freezer.state")
	if err := os.WriteFile(file, []byte(want), 0); err != nil {
		return fmt.Errorf("cgroup %s: freezer: set %s: %w", g.path, want, err)
	}
	for d := 100 * time.Microsecond; ; d = min(2*d, 10*time.Millisecond) {
		st, err := g.FreezerState()
		if err != nil {
			return err
		}
		if st == want {
			return nil
		}
		if err := sleep(ctx, d); err != nil {
			return fmt.Errorf("cgroup %s: freezer still %s, want %s: %w", g.path, st, want, err)
		}
		// A FREEZING group may need the write again.
		os.WriteFile(file, []byte(want), 0)
	}
}

// KillAll kills every process of the group, frozen or not: SIGKILL to each
// (pinned by pidfd, see Kill), then a thaw (a frozen process dies only once
// thawed), then Kill until the group is empty or ctx ends.
func (g *Group) KillAll(ctx context.Context) error {
	pids, err := g.Procs()
	if err != nil {
		return err
	}
	for _, pid := range pids {
		if err := g.killOne(pid); err != nil {
			return err
		}
	}
	if err := g.Thaw(ctx); err != nil {
		return err
	}
	return g.Kill(ctx)
}

// RemoveAll removes the group's directories in Controllers and in the
// freezer hierarchy (see Remove).
func (g *Group) RemoveAll(ctx context.Context) error {
	if err := g.Remove(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, removeTimeout)
	defer cancel()
	for {
		err := unix.Rmdir(g.FreezerDir())
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("cgroup %s: remove freezer: %w", g.path, err)
		}
		if err := sleep(ctx, pollInterval); err != nil {
			return fmt.Errorf("cgroup %s: remove freezer: still busy: %w", g.path, err)
		}
	}
}

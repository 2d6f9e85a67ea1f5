package criu

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// KernelFactsDir is where the CRIU that `make deps` builds keeps its cache
// of kernel facts (criu.kdat: CRIU's build setting RUNDIR; keep in step
// with scripts/install-deps.sh). CRIU keeps that cache only on a tmpfs and
// otherwise probes the kernel again at every call, about 12 ms each; a
// post-copy migration makes three calls while the workload is frozen.
const KernelFactsDir = "/run/baton-criu"

// ErrKernelFactsCache: the cache directory could not be made a tmpfs.
var ErrKernelFactsCache = errors.New("criu: no tmpfs for CRIU's kernel facts cache")

// EnsureKernelFactsCache makes dir a directory on a tmpfs, root's only: it
// creates it (0700), and mounts a small tmpfs on it unless it is on one
// already (as under a /run that is a tmpfs). It is idempotent and returns
// whether it mounted. Without it CRIU works, only slower.
func EnsureKernelFactsCache(dir string) (mounted bool, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, fmt.Errorf("%w: %v", ErrKernelFactsCache, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil { // an existing dir too: the cache is root's
		return false, fmt.Errorf("%w: %v", ErrKernelFactsCache, err)
	}
	// Agents starting together on one machine must not stack mounts: the
	// check and the mount happen under a lock on the directory itself.
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrKernelFactsCache, err)
	}
	defer unix.Close(fd)
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		return false, fmt.Errorf("%w: locking %s: %v", ErrKernelFactsCache, dir, err)
	}
	if onTmpfs(dir) {
		return false, nil
	}
	if err := unix.Mount("baton-criu", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=1m,mode=0700"); err != nil {
		return false, fmt.Errorf("%w: mounting one on %s: %v (run make deps, or mount it as root)", ErrKernelFactsCache, dir, err)
	}
	return true, nil
}

func onTmpfs(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.TMPFS_MAGIC
}

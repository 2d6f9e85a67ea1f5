package migration

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/wire"
)

// resolveBeneath is how every path of a received chunk is resolved below its
// root: no symlink (at any level) and nothing outside the root, whatever the
// tree holds. The kernel checks it (openat2), so a symlink planted in the
// tree (or swapped in meanwhile) cannot redirect a write.
const resolveBeneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// writeChunk writes c into root (created if missing): the file c.Path below
// it (parent dirs created 0700), at c.Offset; created with c.Mode's
// permission bits or 0600; truncated to its end on c.Last. A c.Dir chunk
// makes the directory c.Path ("." for root) and gives it exactly c.Mode.
// Writing the same chunk twice gives the same file.
func writeChunk(root string, c *wire.FileChunk) error {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return err
	}
	dirfd, err := unix.Open(root, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", root, err)
	}
	defer func() { unix.Close(dirfd) }()
	parts := strings.Split(c.Path, "/")
	if c.Dir {
		if dirfd, err = openDirs(dirfd, root, parts); err != nil {
			return err
		}
		// Exactly the source's mode, setuid, setgid and sticky bits included.
		if err := unix.Fchmod(dirfd, c.Mode&0o7777); err != nil {
			return fmt.Errorf("chmod %s in %s: %w", c.Path, root, err)
		}
		return nil
	}
	if dirfd, err = openDirs(dirfd, root, parts[:len(parts)-1]); err != nil {
		return err
	}
	mode := uint64(0o600)
	if c.Mode&0o7777 != 0 {
		mode = uint64(c.Mode & 0o777)
	}
	fd, err := unix.Openat2(dirfd, parts[len(parts)-1], &unix.OpenHow{
		Flags: unix.O_WRONLY | unix.O_CREAT | unix.O_CLOEXEC | unix.O_NOFOLLOW, Mode: mode, Resolve: resolveBeneath,
	})
	if err != nil {
		return fmt.Errorf("open %s in %s: %w", c.Path, root, err)
	}
	f := os.NewFile(uintptr(fd), filepath.Join(root, c.Path))
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return err
	} else if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s in %s is not a regular file", c.Path, root)
	}
	if err := f.Chmod(fs.FileMode(mode)); err != nil { // the umask may have cut it
		return err
	}
	if len(c.Data) > 0 {
		if _, err := f.WriteAt(c.Data, c.Offset); err != nil {
			return err
		}
	}
	if c.Last {
		if err := f.Truncate(c.Offset + int64(len(c.Data))); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
	}
	return nil
}

// openDirs walks dirs down from dirfd (root's), creating each missing one
// 0700, never through a symlink, and returns the last one's fd in place of
// dirfd (closed), or dirfd itself when dirs is empty.
func openDirs(dirfd int, root string, dirs []string) (int, error) {
	for _, dir := range dirs {
		if dir == "." || dir == "" {
			continue
		}
		if err := unix.Mkdirat(dirfd, dir, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return dirfd, fmt.Errorf("mkdir %s in %s: %w", dir, root, err)
		}
		fd, err := unix.Openat2(dirfd, dir, &unix.OpenHow{Flags: unix.O_DIRECTORY | unix.O_RDONLY | unix.O_CLOEXEC, Resolve: resolveBeneath})
		if err != nil {
			return dirfd, fmt.Errorf("open dir %s in %s: %w", dir, root, err)
		}
		unix.Close(dirfd)
		dirfd = fd
	}
	return dirfd, nil
}

// file is one file or directory to send.
type file struct {
	kind string // wire chunk kind
	abs  string // path on this node
	rel  string // path in the chunk
	mode uint32
	dir  bool
}

// imageFiles lists the image files of dir to send: regular files, not
// CRIU's logs and stats (the target writes its own).
func imageFiles(dir string) ([]file, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []file
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() || strings.HasSuffix(n, ".log") || strings.HasPrefix(n, "stats-") {
			continue
		}
		out = append(out, file{kind: "image", abs: filepath.Join(dir, n), rel: n, mode: 0o600})
	}
	return out, nil
}

// treeFiles lists dir itself (rel "."), the directories and the regular
// files below it, each directory before what it holds (symlinks and special
// files are not sent), skipping the paths in skip.
func treeFiles(kind, dir string, skip map[string]bool) ([]file, error) {
	var out []file
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !(d.Type().IsRegular() || d.IsDir()) || skip[p] {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		mode := st.Mode & 0o777
		if d.IsDir() {
			mode = st.Mode & 0o7777
		}
		out = append(out, file{kind: kind, abs: p, rel: filepath.ToSlash(rel), mode: mode, dir: d.IsDir()})
		return nil
	})
	return out, err
}

// chunks calls send with the chunks of f in order (one empty chunk for an
// empty file, one Dir chunk for a directory) and returns the bytes sent.
func chunks(mid string, f file, send func(*wire.FileChunk) error) (int64, error) {
	if f.dir {
		return 0, send(&wire.FileChunk{Migration: mid, Kind: f.kind, Path: f.rel, Mode: f.mode, Dir: true, Last: true})
	}
	in, err := os.Open(f.abs)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	buf := make([]byte, wire.MaxChunk)
	var off int64
	for {
		n, err := io.ReadFull(in, buf)
		last := err == io.EOF || err == io.ErrUnexpectedEOF
		if err != nil && !last {
			return off, fmt.Errorf("read %s: %w", f.abs, err)
		}
		if n == len(buf) {
			// Full chunk: it is the last one only if nothing follows.
			var one [1]byte
			m, _ := in.ReadAt(one[:], off+int64(n))
			last = m == 0
		}
		c := &wire.FileChunk{Migration: mid, Kind: f.kind, Path: f.rel, Mode: f.mode, Offset: off, Data: buf[:n], Last: last}
		if err := send(c); err != nil {
			return off, err
		}
		off += int64(n)
		if last {
			return off, nil
		}
	}
}

// stopOrphanPageServer kills a CRIU page server left by a previous agent
// process (after a restart) that still holds imagesDir open: it would wait
// for a dump forever. It is found by its open images dir, not by PID.
func stopOrphanPageServer(imagesDir string) {
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		comm, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "comm"))
		if strings.TrimSpace(string(comm)) != "criu" {
			continue
		}
		pidfd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue
		}
		fds, _ := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		for _, fd := range fds {
			if l, _ := os.Readlink(filepath.Join("/proc", p.Name(), "fd", fd.Name())); l == imagesDir {
				unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
				break
			}
		}
		unix.Close(pidfd)
	}
}

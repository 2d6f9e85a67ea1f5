package runner

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// procStat is what the runner reads from /proc/PID/stat.
type procStat struct {
	state      byte   // R, S, D, Z, ...
	startTicks uint64 // start time after boot, in clock ticks (field 22)
}

// readProcStat reads /proc/PID/stat. It returns an error wrapping
// fs.ErrNotExist when there is no such process.
func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if errors.Is(err, unix.ESRCH) {
		err = fmt.Errorf("pid %d: %w", pid, fs.ErrNotExist)
	}
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(b)
}

// parseProcStat parses the contents of /proc/PID/stat. The command name
// (field 2) is in parentheses and may itself contain spaces and parentheses,
// so the fields are counted from the last ')'.
func parseProcStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc stat %q: no command name", b)
	}
	f := bytes.Fields(b[i+1:]) // f[0] is field 3 (state)
	const startField = 22 - 3
	if len(f) <= startField || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("/proc stat %q: too few fields", b)
	}
	ticks, err := strconv.ParseUint(string(f[startField]), 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("/proc stat: start time %q: %w", f[startField], err)
	}
	return procStat{state: f[0][0], startTicks: ticks}, nil
}

// lookPath finds the executable for name the way execvp(3) would with the
// given PATH, from directory dir: a name with a slash is taken as is
// (relative to dir), otherwise each PATH entry is tried (empty and relative
// entries relative to dir).
func lookPath(name, path, dir string) (string, error) {
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	if strings.ContainsRune(name, '/') {
		p := abs(name)
		if err := executable(p); err != nil {
			return "", err
		}
		return p, nil
	}
	for _, d := range filepath.SplitList(path) {
		if d == "" {
			d = "."
		}
		p := abs(filepath.Join(d, name))
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%q not found in PATH %q", name, path)
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("%s is a directory", p)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not executable", p)
	}
	return nil
}

// exitResult is how a process ended.
type exitResult struct {
	known  bool // false: the process was not our child, its status is lost
	code   int  // exit code, or 128+signal when killed
	signal unix.Signal
}

// sigchldInfo is the SIGCHLD layout of siginfo_t on Linux (all
// architectures Baton supports): after signo, errno, code and padding come
// si_pid, si_uid and si_status.
type sigchldInfo struct {
	Signo, Errno, Code, _ int32
	Pid, UID, Status      int32
}

// reap collects the exit status of the exited process behind pidfd. If it is
// not a child of this process (a workload adopted from a previous agent), the
// status is unknown.
func reap(pidfd int) exitResult {
	var si unix.Siginfo
	info := (*sigchldInfo)(unsafe.Pointer(&si))
	for _, opts := range []int{unix.WEXITED | unix.WNOHANG, unix.WEXITED} {
		err := unix.Waitid(unix.P_PIDFD, pidfd, &si, opts, nil)
		for err == unix.EINTR {
			err = unix.Waitid(unix.P_PIDFD, pidfd, &si, opts, nil)
		}
		if err != nil {
			return exitResult{}
		}
		if info.Pid != 0 {
			break
		}
		// The pidfd said "exited" a moment before the zombie became
		// reapable: wait for it (it is our child and has exited).
	}
	switch info.Code {
	case 1: // CLD_EXITED
		return exitResult{known: true, code: int(info.Status)}
	case 2, 3: // CLD_KILLED, CLD_DUMPED
		sig := unix.Signal(info.Status)
		return exitResult{known: true, code: 128 + int(sig), signal: sig}
	}
	return exitResult{}
}

// catchesSignal reports whether pid has a handler installed for sig, from
// the SigCgt mask in /proc/PID/status.
func catchesSignal(pid int, sig unix.Signal) (bool, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false, err
	}
	return sigCaught(b, sig)
}

func sigCaught(status []byte, sig unix.Signal) (bool, error) {
	for _, line := range strings.Split(string(status), "\n") {
		if mask, ok := strings.CutPrefix(line, "SigCgt:"); ok {
			v, err := strconv.ParseUint(strings.TrimSpace(mask), 16, 64)
			if err != nil {
				return false, fmt.Errorf("parsing SigCgt %q: %w", mask, err)
			}
			return v&(1<<(uint(sig)-1)) != 0, nil
		}
	}
	return false, errors.New("no SigCgt line in /proc status")
}

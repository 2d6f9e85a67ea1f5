package process

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/batonhq/baton/plugins/fence"
)

// pidFromFile reads a pid file. A missing file or a dead or reused pid
// gives 0: the agent is not running.
func pidFromFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("%w: pid file: %v", fence.ErrFailed, err)
	}
	pid, err := ParsePidFile(b)
	if err != nil {
		return 0, fmt.Errorf("%w: pid file %s: %v", fence.ErrFailed, path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return 0, nil
	}
	if start, ok := startTime(pid); ok && start.After(fi.ModTime().Add(time.Second)) {
		return 0, nil // the pid was reused by a process younger than the file
	}
	return pid, nil
}

// ParsePidFile parses a pid file: a positive decimal pid, optionally
// surrounded by white space.
func ParsePidFile(b []byte) (int, error) {
	s := strings.TrimSpace(string(b))
	pid, err := strconv.Atoi(s)
	if err != nil || pid <= 0 || pid > 1<<22 {
		return 0, fmt.Errorf("not a pid: %q", clip(s))
	}
	return pid, nil
}

// cgroupPids lists the processes in dir and its sub-cgroups; a missing
// directory has none.
func cgroupPids(dir string) ([]int, error) {
	var pids []int
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // gone meanwhile
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(path, "cgroup.procs"))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids, err
}

// matchPids returns the processes whose command line matches re.
func matchPids(re interface{ MatchString(string) bool }) ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || len(b) == 0 { // gone, or a kernel thread
			continue
		}
		if re.MatchString(CmdLine(b)) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// CmdLine turns /proc/PID/cmdline (NUL-separated arguments) into the
// arguments joined by spaces.
func CmdLine(b []byte) string {
	return string(bytes.ReplaceAll(bytes.TrimRight(b, "\x00"), []byte{0}, []byte{' '}))
}

// alive: the process exists and is not a zombie.
func alive(pid int) bool {
	st, _, ok := readStat(pid)
	return ok && st != 'Z' && st != 'X'
}

// startTime is when the process started.
func startTime(pid int) (time.Time, bool) {
	_, ticks, ok := readStat(pid)
	if !ok {
		return time.Time{}, false
	}
	bt, ok := bootTime()
	if !ok {
		return time.Time{}, false
	}
	const hz = 100 // USER_HZ on Linux
	return bt.Add(time.Duration(ticks) * time.Second / hz), true
}

// readStat returns the state and start time (clock ticks after boot) from
// /proc/PID/stat.
func readStat(pid int) (state byte, start uint64, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	return ParseStat(b)
}

// ParseStat parses /proc/PID/stat: the state (field 3) and the start time
// (field 22). The command name (field 2) may hold spaces and parentheses,
// so fields are counted after its last ')'.
func ParseStat(b []byte) (state byte, start uint64, ok bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || len(f[0]) != 1 {
		return 0, 0, false
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return f[0][0], start, true
}

func bootTime() (time.Time, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			s, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}, false
			}
			return time.Unix(s, 0), true
		}
	}
	return time.Time{}, false
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

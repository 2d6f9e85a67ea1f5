package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/batonhq/baton/wire"
)

// stateFileName is the runner's state file inside Config.DataDir.
const stateFileName = "state.json"

// stateVersion is the version of the state file format.
const stateVersion = 1

// stateFile is what the runner persists: every workload it knows, running or
// exited, until Stop forgets it.
type stateFile struct {
	V         int      `json:"v"`
	Node      string   `json:"node"`
	Workloads []record `json:"workloads"`
}

// record is one workload in the state file.
type record struct {
	Spec   wire.WorkloadSpec   `json:"spec"`
	Status wire.WorkloadStatus `json:"status"`
	// StartTicks is the process start time from /proc/PID/stat; with
	// Status.HostPID it identifies the process across agent restarts.
	StartTicks uint64 `json:"start_ticks"`
	// Cgroup is the workload's cgroup path below each v1 hierarchy root.
	Cgroup string `json:"cgroup"`
	// Migration is the id of the migration that froze the workload to move
	// it away (Status.State is then wire.StateMigrating).
	Migration string `json:"migration,omitempty"`
	// Handoff: the workload is being killed and forgotten because it moved
	// away (or a restored copy is discarded); its exit is no failure.
	Handoff bool `json:"handoff,omitempty"`
}

// readState loads the state file in dir. A missing file is an empty state.
func readState(dir string) (stateFile, error) {
	path := filepath.Join(dir, stateFileName)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return stateFile{V: stateVersion}, nil
	}
	if err != nil {
		return stateFile{}, fmt.Errorf("read state file: %w", err)
	}
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil {
		return stateFile{}, fmt.Errorf("%w: %s: %v (move it away to start with no workloads; running ones will then not be adopted)", ErrCorruptState, path, err)
	}
	if st.V != stateVersion {
		return stateFile{}, fmt.Errorf("%w: %s: version %d, want %d", ErrCorruptState, path, st.V, stateVersion)
	}
	return st, nil
}

// writeState replaces the state file in dir atomically: a crash leaves
// either the old or the new file, never a torn one.
func writeState(dir string, st stateFile) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+stateFileName+".*.tmp")
	if err != nil {
		return fmt.Errorf("write state file: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename it no longer exists
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write state file %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync state file %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close state file %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, stateFileName)); err != nil {
		return fmt.Errorf("replace state file: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync state dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync state dir %s: %w", dir, err)
	}
	return nil
}

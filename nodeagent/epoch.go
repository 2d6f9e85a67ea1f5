package nodeagent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// ErrStaleEpoch is returned for a command from a server whose leadership
// epoch is lower than one this agent has already obeyed: a deposed leader.
var ErrStaleEpoch = errors.New("nodeagent: command from a deposed leader")

// epochGuard remembers, on disk, the highest leader epoch the agent has
// obeyed and refuses commands carrying a lower one (fencing tokens). It
// survives agent restarts so that a deposed leader cannot slip a command in
// after one.
type epochGuard struct {
	mu      sync.Mutex
	path    string
	highest uint64
}

func loadEpochGuard(dataDir string) (*epochGuard, error) {
	g := &epochGuard{path: filepath.Join(dataDir, "leader-epoch")}
	b, err := os.ReadFile(g.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return g, nil
	case err != nil:
		return nil, fmt.Errorf("reading leader epoch: %w", err)
	}
	if g.highest, err = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err != nil {
		return nil, fmt.Errorf("leader epoch file %s is corrupt (%q): remove it to accept any leader: %w", g.path, b, err)
	}
	return g, nil
}

// admit accepts epoch if it is at least the highest seen, recording it.
func (g *epochGuard) admit(epoch uint64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if epoch < g.highest {
		return fmt.Errorf("%w: epoch %d, but this agent already obeys epoch %d", ErrStaleEpoch, epoch, g.highest)
	}
	if epoch == g.highest {
		return nil
	}
	tmp := g.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.FormatUint(epoch, 10)+"\n"), 0o644); err != nil {
		return fmt.Errorf("recording leader epoch %d: %w", epoch, err)
	}
	if err := os.Rename(tmp, g.path); err != nil {
		return fmt.Errorf("recording leader epoch %d: %w", epoch, err)
	}
	g.highest = epoch
	return nil
}

package nodeagent

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestEpochGuard(t *testing.T) {
	dir := t.TempDir()
	g, err := loadEpochGuard(dir)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		epoch uint64
		ok    bool
	}{{0, true}, {5, true}, {5, true}, {4, false}, {0, false}, {9, true}, {6, false}}
	for _, s := range steps {
		err := g.admit(s.epoch)
		if (err == nil) != s.ok || (err != nil && !errors.Is(err, ErrStaleEpoch)) {
			t.Fatalf("admit(%d) = %v, want ok=%v", s.epoch, err, s.ok)
		}
	}
	// A restarted agent remembers the highest epoch.
	g2, err := loadEpochGuard(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := g2.admit(8); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("after restart admit(8) = %v, want ErrStaleEpoch", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "leader-epoch"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadEpochGuard(dir); err == nil {
		t.Fatal("a corrupt epoch file was accepted")
	}
}

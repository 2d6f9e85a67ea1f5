package fenceagent_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/batonhq/baton/plugins/fence"
	"github.com/batonhq/baton/plugins/fence/drivers/fenceagent"
	"github.com/batonhq/baton/plugins/fence/fencetest"
)

// Plug handling (plug=, action=list, host_map) with testdata/fence_fakeplugs,
// a shell stand-in: Debian's fence_dummy has no plugs, and the agents that
// list plugs need real hardware.
func TestPlugs(t *testing.T) {
	t.Parallel()
	agent, err := filepath.Abs("testdata/fence_fakeplugs")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, p := range []string{"p1", "p2"} {
		if err := os.WriteFile(filepath.Join(dir, p), []byte("on"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	base := map[string]string{"agent": agent, "state_dir": dir}

	t.Run("ListedPlugs", func(t *testing.T) {
		fencetest.Run(t, func(t *testing.T) fence.Driver { return configured(t, fenceagent.New(), base) },
			fencetest.Options{Target: "p1"})
	})
	t.Run("HostMap", func(t *testing.T) {
		p := map[string]string{"host_map": "node1:p2;node2:p1"}
		for k, v := range base {
			p[k] = v
		}
		fencetest.Run(t, func(t *testing.T) fence.Driver { return configured(t, fenceagent.New(), p) },
			fencetest.Options{Target: "node1"})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d := configured(t, fenceagent.New(), p)
		if err := d.Off(ctx, "node1"); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "p2")); string(b) != "off" {
			t.Errorf("Off(node1) left plug p2 %q, want off", b)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "p1")); string(b) != "on" {
			t.Errorf("Off(node1) touched plug p1: %q", b)
		}
		if _, err := d.Status(ctx, "p2"); !errors.Is(err, fence.ErrNotFound) {
			t.Errorf("Status(p2) with a host_map = %v, want ErrNotFound (targets are the map's nodes)", err)
		}
		if err := d.On(ctx, "node1"); err != nil {
			t.Fatal(err)
		}
	})
}

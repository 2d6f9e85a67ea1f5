package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/batonhq/baton/plugins/fence"
	"github.com/batonhq/baton/plugins/fence/fencetest"
)

func TestConformance(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "node1"), []byte("on"), 0o644); err != nil {
		t.Fatal(err)
	}
	fencetest.Run(t, func(t *testing.T) fence.Driver {
		d := &Driver{}
		if err := d.Configure(context.Background(), map[string]string{"dir": dir}); err != nil {
			t.Fatal(err)
		}
		return d
	}, fencetest.Options{Target: "node1", Unsupported: []string{"list", "reboot"}})
}

// TestMain fails the run if a test leaves a child process behind.
func TestMain(m *testing.M) { fencetest.Main(m) }

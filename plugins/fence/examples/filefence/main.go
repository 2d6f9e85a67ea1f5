// Command filefence is the example fence driver for third parties: each
// target is a file in a directory holding "on" or "off". Build it with
// `go build`, point Baton (or fence.Open) at the binary, and run the
// conformance suite against it as main_test.go does.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/batonhq/baton/plugins/fence"
)

// Driver powers "nodes" that are files. It embeds fence.Unimplemented, so
// List and Reboot answer ErrUnsupported; it implements On itself.
type Driver struct {
	fence.Unimplemented
	mu  sync.Mutex
	dir string
}

// Configure takes dir, the directory of target files.
func (d *Driver) Configure(ctx context.Context, p map[string]string) error {
	for k := range p {
		if k != "dir" {
			return fmt.Errorf("filefence: unknown parameter %q: %w", k, fence.ErrInvalidConfig)
		}
	}
	if fi, err := os.Stat(p["dir"]); err != nil || !fi.IsDir() {
		return fmt.Errorf("filefence: dir=%q must be a directory: %w", p["dir"], fence.ErrInvalidConfig)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dir = p["dir"]
	return nil
}

// Metadata describes the driver and its one parameter.
func (d *Driver) Metadata(ctx context.Context) (fence.Metadata, error) {
	return fence.Metadata{
		Name:        "filefence",
		Description: "Example driver: a target is a file in dir holding on or off",
		Parameters:  []fence.Parameter{{Name: "dir", Description: "Directory of target files", Required: true}},
	}, nil
}

// Status reads the target's file.
func (d *Driver) Status(ctx context.Context, target string) (fence.PowerState, error) {
	if err := ctx.Err(); err != nil {
		return fence.PowerUnknown, err
	}
	path, err := d.path(target)
	if err != nil {
		return fence.PowerUnknown, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fence.PowerUnknown, fmt.Errorf("filefence: %w: %v", fence.ErrFailed, err)
	}
	if strings.TrimSpace(string(b)) == "off" {
		return fence.PowerOff, nil
	}
	return fence.PowerOn, nil
}

// Off writes "off": the write is the confirmation.
func (d *Driver) Off(ctx context.Context, target string) error { return d.set(ctx, target, "off") }

// On writes "on".
func (d *Driver) On(ctx context.Context, target string) error { return d.set(ctx, target, "on") }

func (d *Driver) set(ctx context.Context, target, state string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	path, err := d.path(target)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, []byte(state), 0o644); err != nil {
		return fmt.Errorf("filefence: %w: %v", fence.ErrFailed, err)
	}
	return nil
}

// path returns the target's file, or ErrNotFound if there is none.
func (d *Driver) path(target string) (string, error) {
	d.mu.Lock()
	dir := d.dir
	d.mu.Unlock()
	if dir == "" {
		return "", fence.ErrNotConfigured
	}
	path := filepath.Join(dir, filepath.Base(target))
	if _, err := os.Stat(path); target == "" || filepath.Base(target) != target || err != nil {
		return "", fmt.Errorf("filefence: target %q: %w", target, fence.ErrNotFound)
	}
	return path, nil
}

func main() { fence.Serve(&Driver{}) }

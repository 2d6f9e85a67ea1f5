package fence_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/plugins/fence"
	"github.com/batonhq/baton/plugins/fence/fencetest"
)

func newMemory(t *testing.T) *fencetest.Memory {
	t.Helper()
	m := fencetest.NewMemory()
	if err := m.Configure(context.Background(), map[string]string{"targets": "n1,n2"}); err != nil {
		t.Fatal(err)
	}
	return m
}

func serve(t *testing.T, d fence.Driver) *fence.Plugin {
	t.Helper()
	p, err := fence.ServeInProcess(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// The in-memory twin passes the suite directly and through the gRPC shims.
func TestConformanceMemory(t *testing.T) {
	hanging := func(t *testing.T) *fencetest.Memory {
		m := fencetest.NewMemory()
		if err := m.Configure(context.Background(), map[string]string{"targets": "n1", "hang": "1"}); err != nil {
			t.Fatal(err)
		}
		return m
	}
	t.Run("Direct", func(t *testing.T) {
		fencetest.Run(t, func(t *testing.T) fence.Driver { return newMemory(t) }, fencetest.Options{
			Target:  "n1",
			Hanging: func(t *testing.T) fence.Driver { return hanging(t) },
		})
	})
	t.Run("GRPC", func(t *testing.T) {
		m := newMemory(t) // one device shared by the subtests' clients
		fencetest.Run(t, func(t *testing.T) fence.Driver { return serve(t, m) }, fencetest.Options{
			Target:  "n1",
			Hanging: func(t *testing.T) fence.Driver { return serve(t, hanging(t)) },
		})
	})
}

// errDriver answers every call with err.
type errDriver struct{ err error }

func (d errDriver) Configure(context.Context, map[string]string) error { return d.err }
func (d errDriver) Metadata(context.Context) (fence.Metadata, error) {
	return fence.Metadata{}, d.err
}
func (d errDriver) List(context.Context) ([]fence.Target, error)             { return nil, d.err }
func (d errDriver) Status(context.Context, string) (fence.PowerState, error) { return 0, d.err }
func (d errDriver) Off(context.Context, string) error                        { return d.err }
func (d errDriver) On(context.Context, string) error                         { return d.err }
func (d errDriver) Reboot(context.Context, string) error                     { return d.err }

// Every sentinel survives the trip through gRPC, with the driver's message.
func TestErrorMapping(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want []error
	}{
		{"NotFound", fmt.Errorf("target %q: %w", "n9", fence.ErrNotFound), []error{fence.ErrNotFound}},
		{"Unsupported", fence.ErrUnsupported, []error{fence.ErrUnsupported}},
		{"Timeout", fmt.Errorf("bmc silent: %w", fence.ErrTimeout), []error{fence.ErrTimeout}},
		{"Failed", fmt.Errorf("agent exit 1: %w", fence.ErrFailed), []error{fence.ErrFailed}},
		{"InvalidConfig", fmt.Errorf("ip: %w", fence.ErrInvalidConfig), []error{fence.ErrInvalidConfig}},
		{"NotConfigured", fence.ErrNotConfigured, []error{fence.ErrNotConfigured}},
		{"Unclassified", errors.New("boom"), []error{fence.ErrFailed}},
		{"DriverSawDeadline", fmt.Errorf("wait: %w", context.DeadlineExceeded), []error{fence.ErrTimeout}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := serve(t, errDriver{tt.err})
			ctx := context.Background()
			_, err := p.Status(ctx, "n1")
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Errorf("Status error %v: errors.Is(%v) = false", err, w)
				}
			}
			if want := tt.err.Error(); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Status error %q does not carry the driver's message %q", err, want)
			}
			if err := p.Off(ctx, "n1"); !errors.Is(err, tt.want[0]) {
				t.Errorf("Off error %v: want %v", err, tt.want[0])
			}
		})
	}
}

// blockingDriver's Off blocks until its context ends, then reports it.
type blockingDriver struct {
	fence.Unimplemented
	sawDone chan error
}

func (d *blockingDriver) Configure(context.Context, map[string]string) error { return nil }
func (d *blockingDriver) Metadata(context.Context) (fence.Metadata, error) {
	return fence.Metadata{Name: "blocking", Description: "blocks"}, nil
}
func (d *blockingDriver) Status(context.Context, string) (fence.PowerState, error) {
	return fence.PowerOn, nil
}
func (d *blockingDriver) Off(ctx context.Context, _ string) error {
	<-ctx.Done()
	d.sawDone <- ctx.Err()
	return ctx.Err()
}

// Cancellation and deadlines cross the process boundary: the driver's ctx
// ends, and the caller gets the context's error back.
func TestContextPropagates(t *testing.T) {
	t.Run("Deadline", func(t *testing.T) {
		d := &blockingDriver{sawDone: make(chan error, 1)}
		p := serve(t, d)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		err := p.Off(ctx, "n1")
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, fence.ErrTimeout) {
			t.Errorf("Off past its deadline: got %v, want context.DeadlineExceeded and ErrTimeout", err)
		}
		// The plugin side sees its own deadline or the client's cancel,
		// whichever comes first; either way its context ends.
		waitDone(t, d.sawDone)
	})
	t.Run("Cancel", func(t *testing.T) {
		d := &blockingDriver{sawDone: make(chan error, 1)}
		p := serve(t, d)
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- p.Off(ctx, "n1") }()
		// Before or after the call reaches the driver, the caller must get
		// context.Canceled.
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled Off: got %v, want context.Canceled", err)
		}
	})
}

func waitDone(t *testing.T, c <-chan error) {
	t.Helper()
	select {
	case err := <-c:
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			t.Errorf("driver saw %v, want its context to end", err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("driver's context never ended")
	}
}

// A real plugin subprocess (the example driver) over go-plugin and gRPC:
// passes the suite, dies on Close, and a dead plugin's calls fail with
// ErrPluginExited.
func TestOpenSubprocess(t *testing.T) {
	bin := fencetest.BuildDriver(t, "github.com/batonhq/baton/plugins/fence/examples/filefence")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "node1"), []byte("on"), 0o644); err != nil {
		t.Fatal(err)
	}
	open := func(t *testing.T) *fence.Plugin {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		p, err := fence.Open(ctx, fence.Config{Path: bin})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			p.Close()
			waitGone(t, p.Pid())
		})
		if err := p.Configure(ctx, map[string]string{"dir": dir}); err != nil {
			t.Fatal(err)
		}
		return p
	}

	t.Run("Conformance", func(t *testing.T) {
		p := open(t) // one process for the whole suite
		fencetest.Run(t, func(t *testing.T) fence.Driver { return p },
			fencetest.Options{Target: "node1", Unsupported: []string{"list", "reboot"}})
	})

	t.Run("CloseKillsProcess", func(t *testing.T) {
		p := open(t)
		pid := p.Pid()
		if pid <= 0 {
			t.Fatalf("Pid() = %d", pid)
		}
		if err := syscall.Kill(pid, 0); err != nil {
			t.Fatalf("plugin pid %d not running before Close: %v", pid, err)
		}
		p.Close()
		waitGone(t, pid)
	})

	t.Run("DeadPluginErrPluginExited", func(t *testing.T) {
		p := open(t)
		if err := syscall.Kill(p.Pid(), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitGone(t, p.Pid())
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := p.Status(ctx, "node1"); !errors.Is(err, fence.ErrPluginExited) {
			t.Errorf("Status on a killed plugin: got %v, want ErrPluginExited", err)
		}
	})

	t.Run("NotAPlugin", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := fence.Open(ctx, fence.Config{Path: "/bin/true"})
		if err == nil {
			t.Fatal("Open(/bin/true) succeeded")
		}
	})
}

// waitGone waits until pid no longer exists (go-plugin reaps its child).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("plugin process %d still running 10 s after Close", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

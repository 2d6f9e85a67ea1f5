package fencetest

import (
	"context"
	"errors"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/plugins/fence"
)

// Options describe the device under test.
type Options struct {
	// Target is a target the device controls and the test may power off
	// and on. Required.
	Target string
	// UnknownTarget is a name the device does not know; default
	// "baton-fencetest-no-such-target".
	UnknownTarget string
	// Unsupported lists the optional actions ("list", "on", "reboot") the
	// driver answers with ErrUnsupported; the suite checks that it does.
	// Status and Off are never optional.
	Unsupported []string
	// PowerOn brings Target back on outside the driver. Required when "on"
	// is unsupported (e.g. restarting the processes a process driver
	// kills); otherwise the suite uses the driver's On.
	PowerOn func(t *testing.T)
	// Hanging, if set, returns a driver for the same target whose device
	// does not answer (a BMC address nobody listens on, an agent told to
	// sleep). The suite then checks that calls in progress end promptly
	// when their deadline passes or their context is cancelled.
	Hanging func(t *testing.T) fence.Driver
	// Settle bounds how long the suite waits for Status to show the state
	// an action asked for (some devices act asynchronously); default 10 s.
	Settle time.Duration
	// CallTimeout bounds each driver call; default 30 s.
	CallTimeout time.Duration
}

func (o *Options) defaults(t *testing.T) {
	t.Helper()
	if o.Target == "" {
		t.Fatal("fencetest: Options.Target is required")
	}
	if o.UnknownTarget == "" {
		o.UnknownTarget = "baton-fencetest-no-such-target"
	}
	for _, a := range o.Unsupported {
		if a != "list" && a != "on" && a != "reboot" {
			t.Fatalf("fencetest: Options.Unsupported: %q is not an optional action (list, on, reboot)", a)
		}
	}
	if o.unsupported("on") && o.PowerOn == nil {
		t.Fatal("fencetest: Options.PowerOn is required when on is unsupported")
	}
	if o.Settle <= 0 {
		o.Settle = 10 * time.Second
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 30 * time.Second
	}
}

func (o *Options) unsupported(action string) bool {
	for _, a := range o.Unsupported {
		if a == action {
			return true
		}
	}
	return false
}

// promptly is how fast a call with a cancelled context must return.
const promptly = 2 * time.Second

var paramName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// Run runs the conformance suite as subtests of t. newDriver returns a
// configured driver for the device; it is called once per subtest with that
// subtest's t, so it can register cleanups.
func Run(t *testing.T, newDriver func(t *testing.T) fence.Driver, opts Options) {
	opts.defaults(t)
	call := func(t *testing.T) (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), opts.CallTimeout)
	}
	// ensureOn puts the target on before a case that needs it.
	ensureOn := func(t *testing.T, d fence.Driver) {
		t.Helper()
		if opts.unsupported("on") {
			opts.PowerOn(t)
		} else {
			ctx, cancel := call(t)
			defer cancel()
			if err := d.On(ctx, opts.Target); err != nil {
				t.Fatalf("On(%q) to prepare the case: %v", opts.Target, err)
			}
		}
		waitState(t, d, opts, fence.PowerOn)
	}

	t.Run("Metadata", func(t *testing.T) {
		d := newDriver(t)
		ctx, cancel := call(t)
		defer cancel()
		md, err := d.Metadata(ctx)
		if err != nil {
			t.Fatalf("Metadata: %v", err)
		}
		if md.Name == "" {
			t.Error("Metadata.Name is empty")
		}
		if md.Description == "" {
			t.Error("Metadata.Description is empty")
		}
		seen := map[string]bool{}
		for _, p := range md.Parameters {
			if !paramName.MatchString(p.Name) {
				t.Errorf("parameter name %q: want lower-case letters, digits and _", p.Name)
			}
			if seen[p.Name] {
				t.Errorf("parameter %q listed twice", p.Name)
			}
			seen[p.Name] = true
			if p.Description == "" {
				t.Errorf("parameter %q has no description", p.Name)
			}
		}
	})

	t.Run("ConfigureRejectsUnknownParameterKeepsConfig", func(t *testing.T) {
		d := newDriver(t)
		ctx, cancel := call(t)
		defer cancel()
		err := d.Configure(ctx, map[string]string{"baton_fencetest_bogus": "1"})
		if !errors.Is(err, fence.ErrInvalidConfig) {
			t.Fatalf("Configure with an unknown parameter: got %v, want ErrInvalidConfig", err)
		}
		// A failed Configure leaves the previous configuration in place.
		if _, err := d.Status(ctx, opts.Target); err != nil {
			t.Fatalf("Status(%q) after a rejected Configure: %v (the previous configuration must stay)", opts.Target, err)
		}
	})

	t.Run("List", func(t *testing.T) {
		d := newDriver(t)
		ctx, cancel := call(t)
		defer cancel()
		ts, err := d.List(ctx)
		if opts.unsupported("list") {
			if !errors.Is(err, fence.ErrUnsupported) {
				t.Fatalf("List on a driver that does not list: got %v, want ErrUnsupported", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		seen := map[string]bool{}
		for _, tg := range ts {
			if tg.Name == "" {
				t.Errorf("List returned a target with no name: %+v", tg)
			}
			if seen[tg.Name] {
				t.Errorf("List returned %q twice", tg.Name)
			}
			seen[tg.Name] = true
		}
		if !seen[opts.Target] {
			t.Errorf("List = %+v, does not include the target %q", ts, opts.Target)
		}
	})

	t.Run("StatusKnownTarget", func(t *testing.T) {
		d := newDriver(t)
		ctx, cancel := call(t)
		defer cancel()
		st, err := d.Status(ctx, opts.Target)
		if err != nil {
			t.Fatalf("Status(%q): %v", opts.Target, err)
		}
		if st != fence.PowerOn && st != fence.PowerOff {
			t.Fatalf("Status(%q) = %v without an error, want on or off", opts.Target, st)
		}
	})

	t.Run("OffThenStatusOff", func(t *testing.T) {
		d := newDriver(t)
		ensureOn(t, d)
		ctx, cancel := call(t)
		defer cancel()
		if err := d.Off(ctx, opts.Target); err != nil {
			t.Fatalf("Off(%q): %v", opts.Target, err)
		}
		// Off returns once the device confirmed: no settling allowed.
		st, err := d.Status(ctx, opts.Target)
		if err != nil || st != fence.PowerOff {
			t.Fatalf("Status(%q) right after Off = %v, %v; want off", opts.Target, st, err)
		}
	})

	t.Run("OffIsIdempotent", func(t *testing.T) {
		d := newDriver(t)
		ctx, cancel := call(t)
		defer cancel()
		for i := 0; i < 2; i++ {
			if err := d.Off(ctx, opts.Target); err != nil {
				t.Fatalf("Off(%q) #%d: %v", opts.Target, i+1, err)
			}
		}
		waitState(t, d, opts, fence.PowerOff)
	})

	t.Run("OnThenStatusOn", func(t *testing.T) {
		d := newDriver(t)
		ctx, cancel := call(t)
		defer cancel()
		if err := d.Off(ctx, opts.Target); err != nil {
			t.Fatalf("Off(%q): %v", opts.Target, err)
		}
		err := d.On(ctx, opts.Target)
		if opts.unsupported("on") {
			if !errors.Is(err, fence.ErrUnsupported) {
				t.Fatalf("On(%q) on a driver that cannot power on: got %v, want ErrUnsupported", opts.Target, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("On(%q): %v", opts.Target, err)
		}
		waitState(t, d, opts, fence.PowerOn)
	})

	t.Run("RebootEndsOn", func(t *testing.T) {
		d := newDriver(t)
		for _, from := range []string{"on", "off"} {
			if from == "on" {
				ensureOn(t, d)
			} else {
				ctx, cancel := call(t)
				if err := d.Off(ctx, opts.Target); err != nil {
					cancel()
					t.Fatalf("Off(%q): %v", opts.Target, err)
				}
				cancel()
			}
			ctx, cancel := call(t)
			err := d.Reboot(ctx, opts.Target)
			cancel()
			if opts.unsupported("reboot") {
				if !errors.Is(err, fence.ErrUnsupported) {
					t.Fatalf("Reboot(%q) from %s on a driver that cannot power on: got %v, want ErrUnsupported", opts.Target, from, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("Reboot(%q) from %s: %v", opts.Target, from, err)
			}
			waitState(t, d, opts, fence.PowerOn)
		}
	})

	t.Run("UnknownTarget", func(t *testing.T) {
		d := newDriver(t)
		ctx, cancel := call(t)
		defer cancel()
		u := opts.UnknownTarget
		if _, err := d.Status(ctx, u); !errors.Is(err, fence.ErrNotFound) {
			t.Errorf("Status(%q): got %v, want ErrNotFound", u, err)
		}
		if err := d.Off(ctx, u); !errors.Is(err, fence.ErrNotFound) {
			t.Errorf("Off(%q): got %v, want ErrNotFound", u, err)
		}
		if err := d.On(ctx, u); !errors.Is(err, fence.ErrNotFound) && !errors.Is(err, fence.ErrUnsupported) {
			t.Errorf("On(%q): got %v, want ErrNotFound (or ErrUnsupported)", u, err)
		}
		if err := d.Reboot(ctx, u); !errors.Is(err, fence.ErrNotFound) && !errors.Is(err, fence.ErrUnsupported) {
			t.Errorf("Reboot(%q): got %v, want ErrNotFound (or ErrUnsupported)", u, err)
		}
	})

	t.Run("CancelledContext", func(t *testing.T) {
		d := newDriver(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		calls := map[string]func() error{
			"Status": func() error { _, err := d.Status(ctx, opts.Target); return err },
			"Off":    func() error { return d.Off(ctx, opts.Target) },
			"On":     func() error { return d.On(ctx, opts.Target) },
			"Reboot": func() error { return d.Reboot(ctx, opts.Target) },
			"List":   func() error { _, err := d.List(ctx); return err },
		}
		for name, f := range calls {
			start := time.Now()
			err := f()
			if took := time.Since(start); took > promptly {
				t.Errorf("%s with a cancelled context took %v, want < %v", name, took, promptly)
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("%s with a cancelled context: got %v, want an error wrapping context.Canceled", name, err)
			}
		}
	})

	t.Run("ExpiredDeadline", func(t *testing.T) {
		d := newDriver(t)
		ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		defer cancel()
		start := time.Now()
		err := d.Off(ctx, opts.Target)
		if took := time.Since(start); took > promptly {
			t.Errorf("Off with an expired deadline took %v, want < %v", took, promptly)
		}
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, fence.ErrTimeout) {
			t.Errorf("Off with an expired deadline: got %v, want context.DeadlineExceeded or ErrTimeout", err)
		}
	})

	t.Run("HangingDeviceDeadline", func(t *testing.T) {
		if opts.Hanging == nil {
			t.Skip("no Options.Hanging: the driver's author gave no way to make the device hang")
		}
		d := opts.Hanging(t)
		for name, f := range map[string]func(context.Context) error{
			"Status": func(ctx context.Context) error { _, err := d.Status(ctx, opts.Target); return err },
			"Off":    func(ctx context.Context) error { return d.Off(ctx, opts.Target) },
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			start := time.Now()
			err := f(ctx)
			cancel()
			if took := time.Since(start); took > 300*time.Millisecond+promptly {
				t.Errorf("%s on a hanging device with a 300 ms deadline took %v", name, took)
			}
			if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, fence.ErrTimeout) {
				t.Errorf("%s on a hanging device past its deadline: got %v, want context.DeadlineExceeded and ErrTimeout", name, err)
			}
		}
	})

	t.Run("HangingDeviceCancel", func(t *testing.T) {
		if opts.Hanging == nil {
			t.Skip("no Options.Hanging")
		}
		d := opts.Hanging(t)
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- d.Off(ctx, opts.Target) }()
		// Let the call get under way: there is no event to wait for from
		// outside the driver, and cancelling earlier is also a valid case.
		time.Sleep(100 * time.Millisecond)
		start := time.Now()
		cancel()
		select {
		case err := <-errc:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Off on a hanging device, cancelled: got %v, want context.Canceled", err)
			}
			if took := time.Since(start); took > promptly {
				t.Errorf("Off took %v to return after cancel", took)
			}
		case <-time.After(promptly + 5*time.Second):
			t.Fatalf("Off on a hanging device did not return %v after cancel", promptly+5*time.Second)
		}
	})

	t.Run("ConcurrentStatus", func(t *testing.T) {
		d := newDriver(t)
		ctx, cancel := call(t)
		defer cancel()
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := d.Status(ctx, opts.Target); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("concurrent Status(%q): %v", opts.Target, err)
		}
	})

	// Leave the device on, as a test would find a real node.
	t.Run("LeaveOn", func(t *testing.T) {
		d := newDriver(t)
		ensureOn(t, d)
	})
}

// waitState polls Status until it reports want or opts.Settle passes.
func waitState(t *testing.T, d fence.Driver, opts Options, want fence.PowerState) {
	t.Helper()
	deadline := time.Now().Add(opts.Settle)
	backoff := 10 * time.Millisecond
	var (
		st  fence.PowerState
		err error
	)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), opts.CallTimeout)
		st, err = d.Status(ctx, opts.Target)
		cancel()
		if err == nil && st == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Status(%q) = %v, %v after %v; want %v", opts.Target, st, err, opts.Settle, want)
		}
		time.Sleep(backoff) // polling a device: a condition with a deadline
		if backoff < 200*time.Millisecond {
			backoff *= 2
		}
	}
}

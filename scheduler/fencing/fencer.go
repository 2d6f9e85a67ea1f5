package fencing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/batonhq/baton/plugins/fence"
)

// Errors of a Fencer besides those of the drivers (plugins/fence's
// sentinels, which every fence error wraps where the driver gave one).
var (
	// ErrUnknownDevice: Fence was asked for a device the configuration does
	// not define.
	ErrUnknownDevice = errors.New("fencing: unknown fence device")
	// ErrClosed: the Fencer was closed.
	ErrClosed = errors.New("fencing: fencer closed")
)

// paramHostList is the parameter in which drivers (fence-agent, ipmi,
// process) take the nodes a device fences.
const paramHostList = "host_list"

// Options tune a Fencer. The zero value is the production setting.
type Options struct {
	// Logger receives plugin starts and restarts, fence results and the
	// plugins' own log lines (at debug level). Nil discards them.
	Logger *slog.Logger
	// DriverDirs are searched for baton-fence-NAME before $PATH. Nil means
	// the directory of the running executable (ExecutableDir).
	DriverDirs []string
	// StartTimeout bounds a plugin's start; 0 is fence.Open's default
	// (30 s, or the fence call's deadline if sooner).
	StartTimeout time.Duration
}

// Fencer fences nodes with the devices of a Config: it implements the
// scheduler's Fencer. Each device's plugin starts on its first use and
// keeps running (a plugin that died is started again once per call); it is
// configured with the device's parameters, then Off powers the target off
// and Status must confirm it off. Safe for concurrent use: fences through
// different devices run in parallel, and so do fences of several nodes
// through one device once its plugin is running. Close stops the plugins.
type Fencer struct {
	cfg     Config
	log     *slog.Logger
	devices map[string]*device
	// open starts a plugin; fence.Open, replaced in tests.
	open func(ctx context.Context, d *device) (*fence.Plugin, error)
}

// device is one configured device and its plugin.
type device struct {
	name    string
	driver  string // as configured
	path    string // the binary
	params  map[string]string
	targets map[string]bool // targets known from the configuration (knownTargets)
	log     *slog.Logger

	// lock guards the fields below; a channel, so that waiting for a
	// plugin another fence is starting ends with the caller's context.
	lock chan struct{}
	// plugin is the running plugin, nil until first use or after it died.
	plugin *fence.Plugin
	// autoHosts: the driver takes host_list and the parameters give none,
	// so the Fencer passes the targets it fences (hosts).
	autoHosts bool
	hosts     map[string]bool
	// configured: plugin accepted the parameters (with hosts).
	configured bool
	// takes lists the parameters the driver documents, for error messages.
	takes  []string
	closed bool
}

// NewFencer checks cfg and finds every device's driver binary (see
// FindDriver); it starts no process. Errors name the device and, for a
// missing binary, the places searched.
func NewFencer(cfg Config, opts Options) (*Fencer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dirs := opts.DriverDirs
	if dirs == nil {
		dirs = []string{ExecutableDir()}
	}
	f := &Fencer{cfg: cfg, log: log, devices: map[string]*device{}}
	for _, name := range slices.Sorted(maps.Keys(cfg.Devices)) {
		dev := cfg.Devices[name]
		path, err := FindDriver(dev.Driver, dirs)
		if err != nil {
			return nil, fmt.Errorf("fence device %q: %w", name, err)
		}
		f.devices[name] = &device{
			name: name, driver: dev.Driver, path: path, params: dev.Params,
			targets: cfg.knownTargets(name),
			log:     log.With("device", name, "driver", dev.Driver),
			lock:    make(chan struct{}, 1),
		}
	}
	f.open = func(ctx context.Context, d *device) (*fence.Plugin, error) {
		return fence.Open(ctx, fence.Config{Path: d.path, Logger: d.log, StartTimeout: opts.StartTimeout})
	}
	return f, nil
}

// Fence powers node off with device and returns nil only once the device
// confirmed it off: Off succeeded and Status, where the driver has it,
// says off. Errors name the node, the device and its driver, and wrap
// plugins/fence's sentinels (fence.ErrFailed, fence.ErrTimeout with
// context.DeadlineExceeded, fence.ErrInvalidConfig, ...), ErrUnknownDevice
// or ErrClosed.
func (f *Fencer) Fence(ctx context.Context, node, device string) error {
	d, ok := f.devices[device]
	if !ok {
		return fmt.Errorf("fence node %q: %w %q; the devices are %s (see the fence configuration)",
			node, ErrUnknownDevice, device, strings.Join(slices.Sorted(maps.Keys(f.devices)), ", "))
	}
	target := f.cfg.Target(device, node)
	start := time.Now()
	err := f.withPlugin(ctx, d, target, func(p fence.Driver) error { return offConfirmed(ctx, d, p, target) })
	if err != nil {
		on := ""
		if target != node {
			on = fmt.Sprintf(", target %q", target)
		}
		return fmt.Errorf("fence node %q with device %q (driver %s%s): %w", node, device, d.driver, on, err)
	}
	d.log.Info("fenced: the device confirmed the node off", "node", node, "target", target, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// offConfirmed powers target off, then asks for its status: Off's nil is
// the device's confirmation, and a status that is not off right after it
// means something is wrong (or the node came back), so it does not count.
func offConfirmed(ctx context.Context, d *device, p fence.Driver, target string) error {
	if err := p.Off(ctx, target); err != nil {
		return err
	}
	st, err := p.Status(ctx, target)
	switch {
	case err == nil && st == fence.PowerOff:
		return nil
	case err == nil:
		return fmt.Errorf("%w: the device confirmed the power off, but the status right after says %s; not counted as fenced", fence.ErrFailed, st)
	case errors.Is(err, fence.ErrUnsupported):
		d.log.Info("the driver has no status; its confirmation of the power off stands", "target", target)
		return nil
	default:
		return fmt.Errorf("the device confirmed the power off, but checking the status failed, so it is not counted as fenced: %w", err)
	}
}

// Check starts every device's plugin, checks its parameters against the
// driver's metadata and configures it (with the targets the configuration
// names, where the Fencer fills in host_list), so that a wrong parameter or
// a driver that does not start shows before a node must be fenced. The
// plugins keep running. It returns every device's error, joined.
func (f *Fencer) Check(ctx context.Context) error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(f.devices)) {
		d := f.devices[name]
		if err := f.withPlugin(ctx, d, "", func(fence.Driver) error { return nil }); err != nil {
			errs = append(errs, fmt.Errorf("fence device %q (driver %s): %w", name, d.driver, err))
		}
	}
	return errors.Join(errs...)
}

// Close stops every plugin. Fences in progress fail with ErrClosed; later
// ones too.
func (f *Fencer) Close() error {
	for _, d := range f.devices {
		d.lock <- struct{}{} // waits at most for a plugin start, bounded by its timeout
		d.closed = true
		if d.plugin != nil {
			d.plugin.Close()
			d.plugin = nil
		}
		<-d.lock
	}
	return nil
}

// withPlugin runs call with d's plugin, ready for target ("" for none),
// and, if the plugin turns out to be gone (fence.ErrPluginExited), starts it
// again and runs call once more: powering off twice is harmless.
func (f *Fencer) withPlugin(ctx context.Context, d *device, target string, call func(fence.Driver) error) error {
	for attempt := 1; ; attempt++ {
		p, err := f.ready(ctx, d, target)
		if err == nil {
			err = call(p)
		}
		if !errors.Is(err, fence.ErrPluginExited) || errors.Is(err, ErrClosed) || attempt == 2 || ctx.Err() != nil {
			return err
		}
		d.log.Warn("fence plugin gone; starting it again", "err", err)
		if err := d.drop(ctx, p); err != nil {
			return err
		}
	}
}

// ready returns d's plugin started and configured for target.
func (f *Fencer) ready(ctx context.Context, d *device, target string) (*fence.Plugin, error) {
	if err := d.acquire(ctx); err != nil {
		return nil, err
	}
	defer d.release()
	if d.closed {
		return nil, fmt.Errorf("%w (%w)", ErrClosed, fence.ErrPluginExited)
	}
	if d.plugin == nil {
		if err := f.start(ctx, d); err != nil {
			return nil, err
		}
	}
	hosts := d.hosts
	if d.autoHosts && target != "" && !hosts[target] {
		hosts = maps.Clone(hosts)
		hosts[target] = true
	}
	if d.configured && len(hosts) == len(d.hosts) {
		return d.plugin, nil
	}
	params := maps.Clone(d.params)
	if d.autoHosts {
		if len(hosts) == 0 {
			// Check of a device that fences only nodes of default_levels:
			// no node to name yet; the first fence configures it.
			return d.plugin, nil
		}
		if params == nil {
			params = map[string]string{}
		}
		params[paramHostList] = strings.Join(slices.Sorted(maps.Keys(hosts)), ",")
	}
	if err := d.plugin.Configure(ctx, params); err != nil {
		if errors.Is(err, fence.ErrInvalidConfig) {
			return nil, fmt.Errorf("check the device's params (the driver takes %s): %w", strings.Join(d.takes, ", "), err)
		}
		return nil, err
	}
	d.hosts, d.configured = hosts, true
	return d.plugin, nil
}

// start starts d's plugin and checks the required parameters against its
// metadata. Called with d.lock held.
func (f *Fencer) start(ctx context.Context, d *device) error {
	p, err := f.open(ctx, d)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("start driver %s: %w: %w: %w", d.path, fence.ErrTimeout, ctx.Err(), err)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("start driver %s: %w: %w", d.path, ctx.Err(), err)
		}
		return fmt.Errorf("start driver %s: %w: %w", d.path, fence.ErrPluginExited, err)
	}
	md, err := p.Metadata(ctx)
	if err != nil {
		p.Close()
		return fmt.Errorf("driver %s: metadata: %w", d.path, err)
	}
	d.takes = d.takes[:0]
	auto := false
	var missing []string
	for _, mp := range md.Parameters {
		d.takes = append(d.takes, mp.Name)
		_, given := d.params[mp.Name]
		if mp.Name == paramHostList && !given {
			auto = true
			continue
		}
		if mp.Required && !given {
			missing = append(missing, mp.Name)
		}
	}
	if len(missing) > 0 {
		p.Close()
		return fmt.Errorf("%w: params lack %s, which driver %s requires (it takes %s)",
			fence.ErrInvalidConfig, strings.Join(missing, ", "), md.Name, strings.Join(d.takes, ", "))
	}
	d.plugin, d.autoHosts, d.configured = p, auto, false
	d.hosts = nil
	if auto {
		d.hosts = maps.Clone(d.targets)
	}
	d.log.Info("fence plugin started", "pid", p.Pid(), "path", d.path)
	return nil
}

// drop stops p if it is still d's plugin, so that the next call starts a
// new one.
func (d *device) drop(ctx context.Context, p *fence.Plugin) error {
	if err := d.acquire(ctx); err != nil {
		return err
	}
	defer d.release()
	if p != nil && d.plugin == p {
		p.Close()
		d.plugin, d.configured = nil, false
	}
	return nil
}

func (d *device) acquire(ctx context.Context) error {
	select {
	case d.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		err := fmt.Errorf("waiting for the device's plugin to start: %w", ctx.Err())
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w: %w", fence.ErrTimeout, err)
		}
		return err
	}
}

func (d *device) release() { <-d.lock }

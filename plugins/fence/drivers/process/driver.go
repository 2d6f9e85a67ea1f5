package process

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/batonhq/baton/plugins/fence"
)

// Parameter names.
const (
	ParamHostList    = "host_list"    // the nodes: n1,n2
	ParamPidFile     = "pidfile"      // e.g. /run/baton/{node}/agent.pid
	ParamCgroup      = "cgroup"       // e.g. /sys/fs/cgroup/pids/baton/{node}
	ParamMatch       = "match"        // regexp over "argv0 argv1 ...", e.g. baton agent --name {node}( |$)
	ParamKillTimeout = "kill_timeout" // seconds Off waits for the processes to go
	ParamDelay       = "delay"        // seconds Off waits before it kills anything
)

// maxDelay bounds the delay parameter (seconds). The delay counts against
// the fence caller's timeout: baton server gives a fence attempt 60 s, so a
// longer delay could never end in a fence; 50 leaves time for the kills.
const maxDelay = 50

const placeholder = "{node}"

// Driver kills local processes. Use New.
type Driver struct {
	fence.Unimplemented // On, Reboot
	mu                  sync.Mutex
	cfg                 *config
}

type config struct {
	nodes       map[string]bool
	pidfile     string
	cgroup      string
	match       string
	killTimeout time.Duration
	delay       time.Duration
}

var _ fence.Driver = (*Driver)(nil)

// New returns an unconfigured driver.
func New() *Driver { return &Driver{} }

var parameters = []fence.Parameter{
	{Name: ParamHostList, Description: "Comma-separated node names", Required: true},
	{Name: ParamPidFile, Description: "Pid file of the node's agent; {node} is replaced by the node name"},
	{Name: ParamCgroup, Description: "Cgroup directory holding the node's processes (searched recursively); {node} is replaced"},
	{Name: ParamMatch, Description: "Regular expression over a process's command line (arguments joined by spaces); {node} is replaced by the quoted node name"},
	{Name: ParamKillTimeout, Description: "Seconds Off waits for the processes to be gone", Default: "10"},
	{Name: ParamDelay, Description: "Seconds Off waits before it kills anything, like the ClusterLabs agents' delay (a slow device, or one node of a pair fencing later); it counts against the caller's fence timeout", Default: "0"},
}

// Configure checks and stores the parameters; at least one of pidfile,
// cgroup and match is required, and cgroup and match must contain {node}
// (as must pidfile with several nodes) so that one node's selectors never
// reach another's processes.
func (d *Driver) Configure(ctx context.Context, p map[string]string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	known := map[string]bool{}
	for _, kp := range parameters {
		known[kp.Name] = true
	}
	for k := range p {
		if !known[k] {
			return fmt.Errorf("process: unknown parameter %q: %w", k, fence.ErrInvalidConfig)
		}
	}
	cfg := &config{nodes: map[string]bool{}, pidfile: p[ParamPidFile], cgroup: p[ParamCgroup], match: p[ParamMatch], killTimeout: 10 * time.Second}
	for _, n := range strings.Split(p[ParamHostList], ",") {
		if n = strings.TrimSpace(n); n != "" {
			if strings.ContainsAny(n, "/\x00") || n == "." || n == ".." {
				return fmt.Errorf("process: node name %q: %w: no slashes", n, fence.ErrInvalidConfig)
			}
			cfg.nodes[n] = true
		}
	}
	if len(cfg.nodes) == 0 {
		return fmt.Errorf("process: %w: %s is required (e.g. host_list=n1,n2)", fence.ErrInvalidConfig, ParamHostList)
	}
	if cfg.pidfile == "" && cfg.cgroup == "" && cfg.match == "" {
		return fmt.Errorf("process: %w: give at least one of %s, %s and %s", fence.ErrInvalidConfig, ParamPidFile, ParamCgroup, ParamMatch)
	}
	for _, pair := range [][2]string{{ParamPidFile, cfg.pidfile}, {ParamCgroup, cfg.cgroup}} {
		if pair[1] != "" && !filepath.IsAbs(pair[1]) {
			return fmt.Errorf("process: %s=%q: %w: want an absolute path", pair[0], pair[1], fence.ErrInvalidConfig)
		}
	}
	if cfg.cgroup != "" && !strings.HasPrefix(filepath.Clean(cfg.cgroup), "/sys/fs/cgroup/") {
		return fmt.Errorf("process: %s=%q: %w: want a directory under /sys/fs/cgroup", ParamCgroup, cfg.cgroup, fence.ErrInvalidConfig)
	}
	// A selector without {node} would match every node's processes (or,
	// for a cgroup hierarchy's root, the whole machine's).
	if cfg.cgroup != "" && !strings.Contains(cfg.cgroup, placeholder) {
		return fmt.Errorf("process: %s=%q: %w: must contain %s, e.g. /sys/fs/cgroup/pids/baton/%s", ParamCgroup, cfg.cgroup, fence.ErrInvalidConfig, placeholder, placeholder)
	}
	if cfg.match != "" && !strings.Contains(cfg.match, placeholder) {
		return fmt.Errorf("process: %s=%q: %w: must contain %s", ParamMatch, cfg.match, fence.ErrInvalidConfig, placeholder)
	}
	if cfg.pidfile != "" && len(cfg.nodes) > 1 && !strings.Contains(cfg.pidfile, placeholder) {
		return fmt.Errorf("process: %s=%q: %w: must contain %s when there are several nodes", ParamPidFile, cfg.pidfile, fence.ErrInvalidConfig, placeholder)
	}
	if cfg.match != "" {
		if _, err := regexp.Compile(strings.ReplaceAll(cfg.match, placeholder, "x")); err != nil {
			return fmt.Errorf("process: %s=%q: %w: %v", ParamMatch, cfg.match, fence.ErrInvalidConfig, err)
		}
	}
	if v := p[ParamKillTimeout]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 600 {
			return fmt.Errorf("process: %s=%q: %w: want seconds, 1 to 600", ParamKillTimeout, v, fence.ErrInvalidConfig)
		}
		cfg.killTimeout = time.Duration(n) * time.Second
	}
	if v := p[ParamDelay]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > maxDelay {
			return fmt.Errorf("process: %s=%q: %w: want whole seconds, 0 to %d (e.g. delay=5)", ParamDelay, v, fence.ErrInvalidConfig, maxDelay)
		}
		cfg.delay = time.Duration(n) * time.Second
	}
	d.mu.Lock()
	d.cfg = cfg
	d.mu.Unlock()
	return nil
}

// Metadata describes the driver.
func (d *Driver) Metadata(ctx context.Context) (fence.Metadata, error) {
	if err := ctx.Err(); err != nil {
		return fence.Metadata{}, err
	}
	return fence.Metadata{
		Name:        "process",
		Description: "Fences a node made of local processes by SIGKILLing its agent and workloads",
		Parameters:  append([]fence.Parameter(nil), parameters...),
	}, nil
}

// List returns the configured nodes.
func (d *Driver) List(ctx context.Context) ([]fence.Target, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cfg := d.config()
	if cfg == nil {
		return nil, fence.ErrNotConfigured
	}
	ts := make([]fence.Target, 0, len(cfg.nodes))
	for n := range cfg.nodes {
		ts = append(ts, fence.Target{Name: n})
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Name < ts[j].Name })
	return ts, nil
}

// Status is on while any of the node's processes is alive.
func (d *Driver) Status(ctx context.Context, target string) (fence.PowerState, error) {
	cfg, err := d.resolve(ctx, target)
	if err != nil {
		return fence.PowerUnknown, err
	}
	pids, err := cfg.find(target)
	if err != nil {
		return fence.PowerUnknown, err
	}
	if len(pids) > 0 {
		return fence.PowerOn, nil
	}
	return fence.PowerOff, nil
}

// Off waits the configured delay, then SIGKILLs the node's processes until
// none is left (processes forked meanwhile are found on the next pass),
// within kill_timeout (counted after the delay) and ctx. Nothing is killed
// when ctx ends during the delay.
func (d *Driver) Off(ctx context.Context, target string) error {
	cfg, err := d.resolve(ctx, target)
	if err != nil {
		return err
	}
	if cfg.delay > 0 {
		if err := pause(ctx, cfg.delay); err != nil {
			return fmt.Errorf("process: node %q: %w during the %v delay before fencing; nothing was killed", target, err, cfg.delay)
		}
	}
	deadline := time.Now().Add(cfg.killTimeout)
	wait := 5 * time.Millisecond
	for {
		pids, err := cfg.find(target)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				return fmt.Errorf("process: node %q: kill %d: %w: %v", target, pid, fence.ErrFailed, err)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process: node %q: %w: processes %v still alive after %v", target, fence.ErrTimeout, pids, cfg.killTimeout)
		}
		if err := pause(ctx, wait); err != nil {
			return fmt.Errorf("process: node %q: %w", target, err)
		}
		if wait < 200*time.Millisecond {
			wait *= 2
		}
	}
}

// pause waits for d (none if d ≤ 0), or returns ctx's error once it ends.
func pause(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (d *Driver) config() *config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

func (d *Driver) resolve(ctx context.Context, target string) (*config, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cfg := d.config()
	if cfg == nil {
		return nil, fence.ErrNotConfigured
	}
	if !cfg.nodes[target] {
		return nil, fmt.Errorf("process: node %q: %w", target, fence.ErrNotFound)
	}
	return cfg, nil
}

// find returns the node's live, non-zombie processes, never PID 1, this
// process or its parent.
func (c *config) find(node string) ([]int, error) {
	set := map[int]bool{}
	if c.pidfile != "" {
		pid, err := pidFromFile(strings.ReplaceAll(c.pidfile, placeholder, node))
		if err != nil {
			return nil, fmt.Errorf("process: node %q: %w", node, err)
		}
		if pid > 0 {
			set[pid] = true
		}
	}
	if c.cgroup != "" {
		pids, err := cgroupPids(strings.ReplaceAll(c.cgroup, placeholder, node))
		if err != nil {
			return nil, fmt.Errorf("process: node %q: %w: %v", node, fence.ErrFailed, err)
		}
		for _, p := range pids {
			set[p] = true
		}
	}
	if c.match != "" {
		re := regexp.MustCompile(strings.ReplaceAll(c.match, placeholder, regexp.QuoteMeta(node)))
		pids, err := matchPids(re)
		if err != nil {
			return nil, fmt.Errorf("process: node %q: %w: %v", node, fence.ErrFailed, err)
		}
		for _, p := range pids {
			set[p] = true
		}
	}
	self, parent := os.Getpid(), os.Getppid()
	var pids []int
	for p := range set {
		if p <= 1 || p == self || p == parent || !alive(p) {
			continue
		}
		pids = append(pids, p)
	}
	sort.Ints(pids)
	return pids, nil
}

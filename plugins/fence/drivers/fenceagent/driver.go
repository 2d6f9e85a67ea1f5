package fenceagent

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/batonhq/baton/plugins/fence"
	"github.com/batonhq/baton/plugins/fence/drivers/internal/run"
)

// Parameters the driver itself takes; every other parameter goes to the
// agent and must be one the agent's metadata lists.
const (
	ParamAgent    = "agent"     // fence_NAME (looked up in PATH, /usr/sbin, /sbin) or an absolute path
	ParamHostList = "host_list" // nodes this device fences: "n1,n2" (like Pacemaker's pcmk_host_list)
	ParamHostMap  = "host_map"  // node to plug: "n1:plug1;n2:plug2" (like pcmk_host_map)
)

// Exit codes of fencing.py (ClusterLabs fence-agents' library).
const (
	exitOK           = 0
	exitOffOrBadArgs = 2 // status: "off"; any other action: bad arguments
	exitLoginDenied  = 3
	exitConnLost     = 4
	exitTimedOut     = 5
	exitPasswordMiss = 10
	exitPrivileges   = 11
)

// reserved parameters are set by the driver for each call.
var reserved = map[string]bool{"action": true, "plug": true, "port": true, "option": true}

var agentName = regexp.MustCompile(`^fence_[a-z0-9_]+$`)

// Driver runs one fence agent. The zero value is unconfigured; use New.
type Driver struct {
	mu  sync.Mutex // guards cfg
	cfg *config
}

type config struct {
	agent    string            // absolute path
	meta     *AgentMetadata    // from action=metadata at Configure
	params   map[string]string // passed through to the agent
	hostList []string
	hostMap  map[string]string
	plugs    bool // the agent takes plug=
}

var _ fence.Driver = (*Driver)(nil)

// New returns an unconfigured driver.
func New() *Driver { return &Driver{} }

// Configure resolves the agent, reads its metadata and checks every other
// parameter against it.
func (d *Driver) Configure(ctx context.Context, params map[string]string) error {
	agent, err := resolveAgent(params[ParamAgent])
	if err != nil {
		return err
	}
	cfg := &config{agent: agent, params: map[string]string{}, hostMap: map[string]string{}}
	cfg.meta, err = agentMetadata(ctx, agent)
	if err != nil {
		return err
	}
	cfg.plugs = cfg.meta.HasParameter("plug") || cfg.meta.HasParameter("port")
	for k, v := range params {
		switch {
		case k == ParamAgent:
		case k == ParamHostList:
			for _, n := range strings.Split(v, ",") {
				if n = strings.TrimSpace(n); n != "" {
					cfg.hostList = append(cfg.hostList, n)
				}
			}
		case k == ParamHostMap:
			for _, pair := range strings.FieldsFunc(v, func(r rune) bool { return r == ';' || r == ' ' }) {
				node, plug, ok := strings.Cut(pair, ":")
				if !ok || node == "" || plug == "" {
					return fmt.Errorf("fenceagent: %s=%q: %w: want node:plug;node:plug", ParamHostMap, v, fence.ErrInvalidConfig)
				}
				cfg.hostMap[node] = plug
			}
		case reserved[k]:
			return fmt.Errorf("fenceagent: parameter %q: %w: the driver sets it (use %s for targets)", k, fence.ErrInvalidConfig, ParamHostMap)
		case !cfg.meta.HasParameter(k):
			return fmt.Errorf("fenceagent: parameter %q: %w: %s does not take it (see its metadata)", k, fence.ErrInvalidConfig, cfg.meta.Name)
		default:
			cfg.params[k] = v
		}
	}
	for k, v := range params {
		if strings.ContainsAny(k+v, "\n\r\x00") {
			return fmt.Errorf("fenceagent: parameter %q: %w: value contains a newline or NUL", k, fence.ErrInvalidConfig)
		}
	}
	if len(cfg.hostMap) > 0 && !cfg.plugs {
		return fmt.Errorf("fenceagent: %w: %s takes no plug, so %s makes no sense; use %s", fence.ErrInvalidConfig, cfg.meta.Name, ParamHostMap, ParamHostList)
	}
	if !cfg.plugs && len(cfg.hostList) == 0 {
		return fmt.Errorf("fenceagent: %w: %s fences one device without plugs: say which node it is with %s=NODE", fence.ErrInvalidConfig, cfg.meta.Name, ParamHostList)
	}
	d.mu.Lock()
	d.cfg = cfg
	d.mu.Unlock()
	return nil
}

// metaCache keeps each agent's metadata, keyed by path and invalidated
// when the file changes: running a Python agent costs ~100 ms.
var metaCache = struct {
	sync.Mutex
	m map[string]cachedMeta
}{m: map[string]cachedMeta{}}

type cachedMeta struct {
	mtime time.Time
	size  int64
	md    *AgentMetadata
}

func agentMetadata(ctx context.Context, agent string) (*AgentMetadata, error) {
	fi, err := os.Stat(agent)
	if err != nil {
		return nil, fmt.Errorf("fenceagent: %s: %w: %v", agent, fence.ErrInvalidConfig, err)
	}
	metaCache.Lock()
	c, ok := metaCache.m[agent]
	metaCache.Unlock()
	if ok && c.mtime.Equal(fi.ModTime()) && c.size == fi.Size() {
		return c.md, nil
	}
	res, err := run.Run(ctx, run.Cmd{Path: agent, Stdin: []byte("action=metadata\n")})
	if err != nil {
		return nil, fmt.Errorf("fenceagent: %s metadata: %w", agent, err)
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("fenceagent: %s action=metadata exited %d: %w: %s", agent, res.ExitCode, fence.ErrInvalidConfig, tail(res.Stderr))
	}
	md, err := ParseMetadata(res.Stdout)
	if err != nil {
		return nil, fmt.Errorf("fenceagent: %s: %w: %w", agent, fence.ErrInvalidConfig, err)
	}
	metaCache.Lock()
	metaCache.m[agent] = cachedMeta{mtime: fi.ModTime(), size: fi.Size(), md: md}
	metaCache.Unlock()
	return md, nil
}

func resolveAgent(agent string) (string, error) {
	switch {
	case agent == "":
		return "", fmt.Errorf("fenceagent: %w: %s is required (e.g. agent=fence_ipmilan)", fence.ErrInvalidConfig, ParamAgent)
	case filepath.IsAbs(agent):
		if fi, err := os.Stat(agent); err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
			return "", fmt.Errorf("fenceagent: %s=%q: %w: not an executable file", ParamAgent, agent, fence.ErrInvalidConfig)
		}
		return agent, nil
	case !agentName.MatchString(agent):
		return "", fmt.Errorf("fenceagent: %s=%q: %w: want fence_NAME or an absolute path", ParamAgent, agent, fence.ErrInvalidConfig)
	}
	if p, err := exec.LookPath(agent); err == nil {
		return filepath.Abs(p)
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, agent)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("fenceagent: %s=%q: %w: not found in PATH, /usr/sbin or /sbin (is fence-agents installed?)", ParamAgent, agent, fence.ErrInvalidConfig)
}

// Metadata lists the driver's own parameters and, once configured, the
// agent's.
func (d *Driver) Metadata(ctx context.Context) (fence.Metadata, error) {
	if err := ctx.Err(); err != nil {
		return fence.Metadata{}, err
	}
	md := fence.Metadata{
		Name:        "fence-agent",
		Description: "Runs a ClusterLabs fence agent (fence_*) with its stdin key=value protocol",
		Parameters: []fence.Parameter{
			{Name: ParamAgent, Description: "Agent to run: fence_NAME (PATH, /usr/sbin, /sbin) or an absolute path", Required: true},
			{Name: ParamHostList, Description: "Comma-separated nodes this device fences (required for agents without plugs)"},
			{Name: ParamHostMap, Description: "Node to plug map: node:plug;node:plug (default: the node name is the plug)"},
		},
	}
	cfg := d.config()
	if cfg == nil {
		return md, nil
	}
	md.Name += ":" + cfg.meta.Name
	if cfg.meta.ShortDesc != "" {
		md.Description += ": " + cfg.meta.ShortDesc
	}
	for _, p := range cfg.meta.Parameters {
		if reserved[p.Name] || p.Deprecated || p.Name == ParamAgent || p.Name == ParamHostList || p.Name == ParamHostMap {
			continue
		}
		desc := p.ShortDesc
		if desc == "" {
			desc = "(the agent gives no description)"
		}
		md.Parameters = append(md.Parameters, fence.Parameter{
			Name: p.Name, Description: desc, Required: p.Required, Default: p.Default,
			Secret: strings.Contains(p.Name, "passw") || strings.Contains(p.Name, "secret") || p.Name == "hexadecimal_kg",
		})
	}
	return md, nil
}

// List returns the configured nodes, or what action=list says when none are
// configured, or ErrUnsupported.
func (d *Driver) List(ctx context.Context) ([]fence.Target, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cfg := d.config()
	if cfg == nil {
		return nil, fence.ErrNotConfigured
	}
	if static := cfg.static(); static != nil {
		return static, nil
	}
	if !cfg.meta.HasAction("list") {
		return nil, fmt.Errorf("fenceagent: %s has no list action: %w", cfg.meta.Name, fence.ErrUnsupported)
	}
	res, err := d.exec(ctx, cfg, "list", "")
	if err != nil {
		return nil, err
	}
	if res.ExitCode != exitOK {
		return nil, exitErr(cfg, "list", "", res)
	}
	return ParseList(res.Stdout), nil
}

// Status runs action=status. Exit 0 is on; exit 2 is off only together
// with fencing.py's "Status: OFF" line, because 2 also means bad arguments.
func (d *Driver) Status(ctx context.Context, target string) (fence.PowerState, error) {
	cfg, plug, err := d.resolve(ctx, target)
	if err != nil {
		return fence.PowerUnknown, err
	}
	res, err := d.exec(ctx, cfg, "status", plug)
	if err != nil {
		return fence.PowerUnknown, fmt.Errorf("fenceagent: status of %q: %w", target, err)
	}
	switch said := ParseStatus(res.Stdout); {
	case res.ExitCode == exitOK && said != fence.PowerOff:
		return fence.PowerOn, nil
	case res.ExitCode == exitOffOrBadArgs && said == fence.PowerOff:
		return fence.PowerOff, nil
	case res.ExitCode == exitOffOrBadArgs:
		return fence.PowerUnknown, fmt.Errorf("fenceagent: %s status of %q exited 2 without \"Status: OFF\" (bad arguments?): %w: %s", cfg.meta.Name, target, fence.ErrFailed, tail(res.Stderr))
	default:
		return fence.PowerUnknown, exitErr(cfg, "status", target, res)
	}
}

// Off runs action=off; the agent confirms the state before exiting 0.
func (d *Driver) Off(ctx context.Context, target string) error { return d.power(ctx, "off", target) }

// On runs action=on.
func (d *Driver) On(ctx context.Context, target string) error { return d.power(ctx, "on", target) }

// Reboot runs action=reboot.
func (d *Driver) Reboot(ctx context.Context, target string) error {
	return d.power(ctx, "reboot", target)
}

func (d *Driver) power(ctx context.Context, action, target string) error {
	cfg, plug, err := d.resolve(ctx, target)
	if err != nil {
		return err
	}
	if !cfg.meta.HasAction(action) {
		return fmt.Errorf("fenceagent: %s has no %s action: %w", cfg.meta.Name, action, fence.ErrUnsupported)
	}
	res, err := d.exec(ctx, cfg, action, plug)
	if err != nil {
		return fmt.Errorf("fenceagent: %s %q: %w", action, target, err)
	}
	if res.ExitCode != exitOK {
		return exitErr(cfg, action, target, res)
	}
	return nil
}

func (d *Driver) config() *config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// static returns the configured targets, or nil when none are configured.
func (c *config) static() []fence.Target {
	if len(c.hostList) == 0 && len(c.hostMap) == 0 {
		return nil
	}
	seen := map[string]bool{}
	var ts []fence.Target
	for _, n := range c.hostList {
		if !seen[n] {
			seen[n] = true
			ts = append(ts, fence.Target{Name: n, Alias: c.hostMap[n]})
		}
	}
	for n, p := range c.hostMap {
		if !seen[n] {
			seen[n] = true
			ts = append(ts, fence.Target{Name: n, Alias: p})
		}
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Name < ts[j].Name })
	return ts
}

// resolve maps a target to the agent's plug ("" for agents without plugs)
// or ErrNotFound.
func (d *Driver) resolve(ctx context.Context, target string) (*config, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	cfg := d.config()
	if cfg == nil {
		return nil, "", fence.ErrNotConfigured
	}
	notFound := fmt.Errorf("fenceagent: target %q: %w (device %s)", target, fence.ErrNotFound, cfg.meta.Name)
	if !validName(target) {
		return nil, "", notFound
	}
	plug := ""
	if cfg.plugs {
		plug = target
	}
	if static := cfg.static(); static != nil {
		if p, ok := cfg.hostMap[target]; ok {
			return cfg, p, nil
		}
		for _, n := range cfg.hostList {
			if n == target {
				return cfg, plug, nil
			}
		}
		return nil, "", notFound
	}
	if cfg.meta.HasAction("list") {
		ts, err := d.List(ctx)
		if err != nil {
			return nil, "", err
		}
		for _, t := range ts {
			if t.Name == target {
				return cfg, plug, nil
			}
		}
		return nil, "", notFound
	}
	return cfg, plug, nil // the agent itself will say if it knows the plug
}

func (d *Driver) exec(ctx context.Context, cfg *config, action, plug string) (run.Result, error) {
	var in strings.Builder
	in.WriteString("action=" + action + "\n")
	if plug != "" {
		in.WriteString("plug=" + plug + "\n")
	}
	keys := make([]string, 0, len(cfg.params))
	for k := range cfg.params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		in.WriteString(k + "=" + cfg.params[k] + "\n")
	}
	return run.Run(ctx, run.Cmd{Path: cfg.agent, Stdin: []byte(in.String())})
}

func exitErr(cfg *config, action, target string, res run.Result) error {
	what := fmt.Sprintf("fenceagent: %s %s %q exited %d", cfg.meta.Name, action, target, res.ExitCode)
	msg := tail(res.Stderr)
	switch res.ExitCode {
	case exitTimedOut:
		return fmt.Errorf("%s: %w: %s", what, fence.ErrTimeout, msg)
	case exitOffOrBadArgs:
		return fmt.Errorf("%s (bad arguments): %w: %s", what, fence.ErrInvalidConfig, msg)
	case exitLoginDenied, exitPasswordMiss, exitPrivileges:
		return fmt.Errorf("%s (login refused; check username, password and privileges): %w: %s", what, fence.ErrFailed, msg)
	case exitConnLost:
		return fmt.Errorf("%s (connection lost): %w: %s", what, fence.ErrFailed, msg)
	default:
		return fmt.Errorf("%s: %w: %s", what, fence.ErrFailed, msg)
	}
}

// tail returns the agent's last meaningful stderr lines: those saying
// ERROR or Failed if any, else the last line, without Python warnings.
func tail(stderr []byte) string {
	var keep, last []string
	for _, l := range strings.Split(string(stderr), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.Contains(l, "Warning:") || strings.HasPrefix(l, "from ") {
			continue
		}
		last = []string{l}
		if strings.Contains(l, "ERROR") || strings.Contains(l, "Failed") {
			keep = append(keep, l)
		}
	}
	if len(keep) == 0 {
		keep = last
	}
	if len(keep) > 3 {
		keep = keep[len(keep)-3:]
	}
	s := cleanText(strings.Join(keep, " | "))
	if s == "" {
		return "(no message on stderr)"
	}
	return s
}

package ipmi

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/batonhq/baton/plugins/fence"
	"github.com/batonhq/baton/plugins/fence/drivers/internal/run"
)

// Parameter names (the first five as fence_ipmilan spells them).
const (
	ParamIP           = "ip"
	ParamPort         = "ipport"
	ParamUsername     = "username"
	ParamPassword     = "password"
	ParamCipher       = "cipher"
	ParamPrivLevel    = "privlvl"
	ParamMethod       = "method"
	ParamHostList     = "host_list"
	ParamIPMITool     = "ipmitool_path"
	ParamPowerTimeout = "power_timeout"
)

var privLevels = map[string]string{
	"callback": "CALLBACK", "user": "USER", "operator": "OPERATOR", "administrator": "ADMINISTRATOR",
}

// Driver fences one node through its BMC. Use New.
type Driver struct {
	mu  sync.Mutex // guards cfg
	cfg *config
}

type config struct {
	tool         string
	ip           string
	port         int
	user         string
	password     string
	cipher       string
	priv         string
	method       string // onoff or cycle
	node         string
	powerTimeout time.Duration
}

var _ fence.Driver = (*Driver)(nil)

// New returns an unconfigured driver.
func New() *Driver { return &Driver{} }

var parameters = []fence.Parameter{
	{Name: ParamIP, Description: "BMC address", Required: true},
	{Name: ParamPort, Description: "BMC UDP port", Default: "623"},
	{Name: ParamUsername, Description: "BMC user", Required: true},
	{Name: ParamPassword, Description: "BMC password (passed to ipmitool in its environment, not its arguments)", Secret: true},
	{Name: ParamCipher, Description: "RMCP+ cipher suite (ipmitool -C); set it (3 or 17) to skip the cipher suite discovery some BMCs do not answer"},
	{Name: ParamPrivLevel, Description: "Privilege level: callback, user, operator or administrator", Default: "administrator"},
	{Name: ParamMethod, Description: "Reboot method: onoff (off, confirm, on) or cycle (chassis power cycle)", Default: "onoff"},
	{Name: ParamHostList, Description: "The node this BMC fences", Required: true},
	{Name: ParamIPMITool, Description: "ipmitool binary", Default: "ipmitool"},
	{Name: ParamPowerTimeout, Description: "Seconds to wait for the BMC to report a requested power state", Default: "20"},
}

// Configure checks and stores the parameters.
func (d *Driver) Configure(ctx context.Context, p map[string]string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	known := map[string]bool{}
	for _, kp := range parameters {
		known[kp.Name] = true
	}
	for k, v := range p {
		if !known[k] {
			return fmt.Errorf("ipmi: unknown parameter %q: %w", k, fence.ErrInvalidConfig)
		}
		if strings.ContainsAny(v, "\n\r\x00") {
			return fmt.Errorf("ipmi: parameter %q: %w: value contains a newline or NUL", k, fence.ErrInvalidConfig)
		}
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("ipmi: "+format+": %w", append(a, fence.ErrInvalidConfig)...)
	}
	cfg := &config{
		ip: p[ParamIP], user: p[ParamUsername], password: p[ParamPassword], cipher: p[ParamCipher],
		port: 623, priv: "ADMINISTRATOR", method: "onoff", tool: "ipmitool", powerTimeout: 20 * time.Second,
	}
	if cfg.ip == "" || strings.HasPrefix(cfg.ip, "-") {
		return bad("%s is required (the BMC's address)", ParamIP)
	}
	if cfg.user == "" || strings.HasPrefix(cfg.user, "-") {
		return bad("%s is required", ParamUsername)
	}
	if v := p[ParamPort]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 65535 {
			return bad("%s=%q is not a port number", ParamPort, v)
		}
		cfg.port = n
	}
	if v := cfg.cipher; v != "" {
		if n, err := strconv.Atoi(v); err != nil || n < 0 || n > 255 {
			return bad("%s=%q is not a cipher suite number", ParamCipher, v)
		}
	}
	if v := p[ParamPrivLevel]; v != "" {
		if cfg.priv = privLevels[strings.ToLower(v)]; cfg.priv == "" {
			return bad("%s=%q: want callback, user, operator or administrator", ParamPrivLevel, v)
		}
	}
	if v := p[ParamMethod]; v != "" {
		if v != "onoff" && v != "cycle" {
			return bad("%s=%q: want onoff or cycle", ParamMethod, v)
		}
		cfg.method = v
	}
	if v := p[ParamPowerTimeout]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 3600 {
			return bad("%s=%q: want seconds, 1 to 3600", ParamPowerTimeout, v)
		}
		cfg.powerTimeout = time.Duration(n) * time.Second
	}
	nodes := strings.Split(p[ParamHostList], ",")
	if len(nodes) != 1 || strings.TrimSpace(nodes[0]) == "" {
		return bad("%s=%q: name the one node this BMC fences", ParamHostList, p[ParamHostList])
	}
	cfg.node = strings.TrimSpace(nodes[0])
	tool := p[ParamIPMITool]
	if tool == "" {
		tool = "ipmitool"
	}
	path, err := exec.LookPath(tool)
	if err != nil {
		return bad("%s=%q: not found (is ipmitool installed?)", ParamIPMITool, tool)
	}
	cfg.tool = path
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
		Name:        "ipmi",
		Description: "Power control of one node through its BMC with ipmitool -I lanplus (IPMI v2)",
		Parameters:  append([]fence.Parameter(nil), parameters...),
	}, nil
}

// List returns the one node.
func (d *Driver) List(ctx context.Context) ([]fence.Target, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cfg := d.config()
	if cfg == nil {
		return nil, fence.ErrNotConfigured
	}
	return []fence.Target{{Name: cfg.node, Alias: fmt.Sprintf("%s:%d", cfg.ip, cfg.port)}}, nil
}

// Status asks the BMC.
func (d *Driver) Status(ctx context.Context, target string) (fence.PowerState, error) {
	cfg, err := d.resolve(ctx, target)
	if err != nil {
		return fence.PowerUnknown, err
	}
	return cfg.status(ctx)
}

// Off powers the node off and polls until the BMC reports it off.
func (d *Driver) Off(ctx context.Context, target string) error {
	cfg, err := d.resolve(ctx, target)
	if err != nil {
		return err
	}
	return cfg.set(ctx, "off", fence.PowerOff)
}

// On powers the node on and polls until the BMC reports it on.
func (d *Driver) On(ctx context.Context, target string) error {
	cfg, err := d.resolve(ctx, target)
	if err != nil {
		return err
	}
	return cfg.set(ctx, "on", fence.PowerOn)
}

// Reboot is off, confirmed, then on (method onoff), or a chassis power
// cycle (method cycle; from off it powers on), then waits for on. With
// cycle the off phase cannot be confirmed.
func (d *Driver) Reboot(ctx context.Context, target string) error {
	cfg, err := d.resolve(ctx, target)
	if err != nil {
		return err
	}
	if cfg.method == "onoff" {
		if err := cfg.set(ctx, "off", fence.PowerOff); err != nil {
			return err
		}
		return cfg.set(ctx, "on", fence.PowerOn)
	}
	st, err := cfg.status(ctx)
	if err != nil {
		return err
	}
	if st == fence.PowerOff {
		return cfg.set(ctx, "on", fence.PowerOn)
	}
	return cfg.set(ctx, "cycle", fence.PowerOn)
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
	if target != cfg.node {
		return nil, fmt.Errorf("ipmi: target %q: %w (this BMC at %s:%d fences %q)", target, fence.ErrNotFound, cfg.ip, cfg.port, cfg.node)
	}
	return cfg, nil
}

// set sends "chassis power <cmd>" and polls the status until want, within
// power_timeout and ctx.
func (c *config) set(ctx context.Context, cmd string, want fence.PowerState) error {
	if _, err := c.ipmitool(ctx, "chassis", "power", cmd); err != nil {
		return err
	}
	deadline := time.Now().Add(c.powerTimeout)
	wait := 50 * time.Millisecond
	for {
		st, err := c.status(ctx)
		if err == nil && st == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ipmi: %s:%d: power %s: %w: status still %v (%v) after %v", c.ip, c.port, cmd, fence.ErrTimeout, st, err, c.powerTimeout)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("ipmi: %s:%d: waiting for power %v: %w", c.ip, c.port, want, ctx.Err())
		case <-t.C:
		}
		if wait < time.Second {
			wait *= 2
		}
	}
}

func (c *config) status(ctx context.Context) (fence.PowerState, error) {
	out, err := c.ipmitool(ctx, "chassis", "power", "status")
	if err != nil {
		return fence.PowerUnknown, err
	}
	st := ParsePowerStatus(out)
	if st == fence.PowerUnknown {
		return st, fmt.Errorf("ipmi: %s:%d: %w: unexpected answer to chassis power status: %q", c.ip, c.port, fence.ErrFailed, clip(out))
	}
	return st, nil
}

// ipmitool runs one ipmitool command; the password travels in
// IPMI_PASSWORD (-E), never on the command line.
func (c *config) ipmitool(ctx context.Context, args ...string) ([]byte, error) {
	base := []string{"-I", "lanplus", "-H", c.ip, "-p", strconv.Itoa(c.port), "-U", c.user, "-E", "-L", c.priv, "-N", "1", "-R", "2"}
	if c.cipher != "" {
		base = append(base, "-C", c.cipher)
	}
	res, err := run.Run(ctx, run.Cmd{
		Path: c.tool, Args: append(base, args...),
		Env: append(os.Environ(), "IPMI_PASSWORD="+c.password),
	})
	if err != nil {
		return nil, fmt.Errorf("ipmi: %s:%d: %s: %w", c.ip, c.port, strings.Join(args, " "), err)
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("ipmi: %s:%d: ipmitool %s exited %d: %w: %s", c.ip, c.port, strings.Join(args, " "), res.ExitCode, fence.ErrFailed, clip(res.Stderr))
	}
	return res.Stdout, nil
}

// clip returns the output's last 300 bytes on one line.
func clip(b []byte) string {
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "?")), " ")
	if len(s) > 300 {
		s = "..." + s[len(s)-300:]
	}
	return s
}

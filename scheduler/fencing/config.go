package fencing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/batonhq/baton/failover/groups"
	"github.com/batonhq/baton/wire"
)

// ErrInvalidConfig is wrapped by every error about the fence configuration
// file itself (its syntax, fields, names and references).
var ErrInvalidConfig = errors.New("fencing: invalid fence configuration")

// Config is a fence configuration file:
//
//	{"devices": {"ipmi-n1": {"driver": "ipmi", "params": {"ip": "10.0.0.5", "username": "admin", "password": "…", "cipher": "3"}},
//	             "procs":   {"driver": "process", "params": {"cgroup": "/sys/fs/cgroup/pids/baton/{node}"}}},
//	 "levels": {"n1": ["ipmi-n1", "procs"]},
//	 "default_levels": ["procs"]}
type Config struct {
	// Devices are the fence devices by name; levels refer to these names.
	Devices map[string]Device `json:"devices"`
	// Levels are each node's devices, tried in order until one confirms
	// the node off. A node listed with no devices is never fenced by a
	// device (its groups wait for an operator's confirmation).
	Levels map[string][]string `json:"levels,omitempty"`
	// DefaultLevels are the devices of every node that Levels does not list.
	DefaultLevels []string `json:"default_levels,omitempty"`
}

// Device is one fence device: a driver and its parameters.
type Device struct {
	// Driver is a driver's name, run as the binary baton-fence-NAME
	// ("fence-agent", "ipmi", "process"), or the absolute path of any
	// driver binary built with plugins/fence.
	Driver string `json:"driver"`
	// Params are the driver's key=value parameters (see its Metadata). A
	// driver that takes host_list gets the targets of the nodes it fences
	// when Params do not give one.
	Params map[string]string `json:"params,omitempty"`
	// Targets maps a node to the name the device knows it by (a plug, a
	// port); a node not listed is its own target.
	Targets map[string]string `json:"targets,omitempty"`
}

// Load reads and checks the fence configuration file at path.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("fence configuration: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("fence configuration %s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes and checks a fence configuration (JSON). Unknown fields,
// keys given twice and values of the wrong type are errors, as is anything
// Validate rejects; every error wraps ErrInvalidConfig.
func Parse(data []byte) (Config, error) {
	if err := checkSyntax(data); err != nil {
		return Config{}, err
	}
	if t := bytes.TrimSpace(data); len(t) == 0 || t[0] != '{' {
		return Config{}, invalidf(`the configuration must be a JSON object: {"devices": {…}, "levels": {…}, "default_levels": […]}`)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return Config{}, invalidf("%v", err) // checkSyntax let it through: not expected
	}
	if err := knownFields("the configuration", top, "devices", "levels", "default_levels"); err != nil {
		return Config{}, err
	}
	var cfg Config
	var devices map[string]json.RawMessage
	if err := decodeField("", top, "devices", &devices, `an object of devices by name, e.g. {"ipmi-n1": {"driver": "ipmi", "params": {…}}}`); err != nil {
		return Config{}, err
	}
	for name, raw := range devices {
		d, err := parseDevice(name, raw)
		if err != nil {
			return Config{}, err
		}
		if cfg.Devices == nil {
			cfg.Devices = map[string]Device{}
		}
		cfg.Devices[name] = d
	}
	if err := decodeField("", top, "levels", &cfg.Levels, `an object of device lists by node, e.g. {"n1": ["ipmi-n1", "procs"]}`); err != nil {
		return Config{}, err
	}
	if err := decodeField("", top, "default_levels", &cfg.DefaultLevels, `a list of device names, e.g. ["procs"]`); err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func parseDevice(name string, raw json.RawMessage) (Device, error) {
	what := fmt.Sprintf("device %q", name)
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return Device{}, invalidf(`%s: want an object {"driver": …, "params": {…}, "targets": {…}}`, what)
	}
	if err := knownFields(what, fields, "driver", "params", "targets"); err != nil {
		return Device{}, err
	}
	var d Device
	if err := decodeField(what, fields, "driver", &d.Driver, `a string: fence-agent, ipmi, process or the absolute path of a driver binary`); err != nil {
		return Device{}, err
	}
	var params map[string]json.RawMessage
	if err := decodeField(what, fields, "params", &params, `an object of parameters, e.g. {"ip": "10.0.0.5"}`); err != nil {
		return Device{}, err
	}
	for k, v := range params {
		s, err := paramValue(v)
		if err != nil {
			return Device{}, invalidf("%s: params.%s: want a string or a number, e.g. \"1\"", what, k)
		}
		if d.Params == nil {
			d.Params = map[string]string{}
		}
		d.Params[k] = s
	}
	if err := decodeField(what, fields, "targets", &d.Targets, `an object of target names by node, e.g. {"n1": "plug1"}`); err != nil {
		return Device{}, err
	}
	return d, nil
}

// paramValue accepts a JSON string, or a number kept as written (ports,
// timeouts): drivers take every parameter as a string.
func paramValue(raw json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var n json.Number
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&n); err != nil {
		return "", err
	}
	return n.String(), nil
}

// knownFields rejects any field of obj not in names.
func knownFields(what string, obj map[string]json.RawMessage, names ...string) error {
	for _, k := range slices.Sorted(maps.Keys(obj)) {
		if !slices.Contains(names, k) {
			return invalidf("%s: unknown field %q (the fields are %s)", what, k, strings.Join(names, ", "))
		}
	}
	return nil
}

// decodeField decodes obj[name], if present and not null, into v; the
// error says what (the enclosing object, "" at the top) wants there.
func decodeField(what string, obj map[string]json.RawMessage, name string, v any, want string) error {
	raw, ok := obj[name]
	if !ok || string(raw) == "null" {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		if what != "" {
			what += ": "
		}
		return invalidf("%s%s: want %s", what, name, want)
	}
	return nil
}

// maxDepth bounds nesting: the format needs four levels.
const maxDepth = 16

// checkSyntax walks the document's tokens: it reports syntax errors and keys
// given twice in one object (encoding/json would keep the last silently: a
// device defined twice must not shadow the first) with their line and
// column, and data after the document.
func checkSyntax(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if _, err := dec.Token(); err == io.EOF {
		return invalidf("the configuration is empty; see scheduler/fencing/README.md for an example")
	}
	dec = json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := walkValue(dec, data, "", 0); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalidf("%s: unexpected data after the end of the configuration", position(data, dec.InputOffset()))
	}
	return nil
}

func walkValue(dec *json.Decoder, data []byte, path string, depth int) error {
	tok, err := dec.Token()
	if err != nil {
		return syntaxError(data, dec, err)
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	if depth >= maxDepth {
		return invalidf("%s: nested too deeply at %s", position(data, dec.InputOffset()), path)
	}
	if delim == '[' {
		for i := 0; dec.More(); i++ {
			if err := walkValue(dec, data, fmt.Sprintf("%s[%d]", path, i), depth+1); err != nil {
				return err
			}
		}
	} else {
		seen := map[string]bool{}
		for dec.More() {
			at := dec.InputOffset()
			tok, err := dec.Token()
			if err != nil {
				return syntaxError(data, dec, err)
			}
			key, _ := tok.(string) // the decoder returns only strings as object keys
			keyPath := strings.TrimPrefix(path+"."+key, ".")
			if seen[key] {
				return invalidf("%s: %s is given twice; keep one", position(data, skipToKey(data, at)), keyPath)
			}
			seen[key] = true
			if err := walkValue(dec, data, keyPath, depth+1); err != nil {
				return err
			}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing delimiter
		return syntaxError(data, dec, err)
	}
	return nil
}

// skipToKey moves past the separator and spaces that InputOffset counts
// before an object key, so that positions point at the key's quote.
func skipToKey(data []byte, at int64) int64 {
	for at < int64(len(data)) && strings.IndexByte(" \t\r\n,", data[at]) >= 0 {
		at++
	}
	return at
}

func syntaxError(data []byte, dec *json.Decoder, err error) error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return invalidf("%s: %s", position(data, se.Offset), strings.TrimPrefix(se.Error(), "json: "))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return invalidf("%s: the configuration ends in the middle (a missing } or ]?)", position(data, int64(len(data))))
	default:
		return invalidf("%s: %v", position(data, dec.InputOffset()), err)
	}
}

// position says where byte offset off of data is, as "line L, column C"
// (both from 1; columns count bytes).
func position(data []byte, off int64) string {
	off = min(max(off, 0), int64(len(data)))
	before := data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := len(before) - bytes.LastIndexByte(before, '\n')
	return fmt.Sprintf("line %d, column %d", line, col)
}

func invalidf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, a...))
}

// deviceNameRE is what a device name may be: it appears in events, logs and
// the API.
var deviceNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$`)

// driverNameRE is what a driver name may be: baton-fence-NAME must be a
// plain file name.
var driverNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Validate checks names and references: at least one device, each with a
// driver given as a name or an absolute path, valid node names, targets
// that fit in a host_list, levels naming defined devices at most once per
// node, and at least one level. Errors wrap ErrInvalidConfig.
func (c Config) Validate() error {
	if len(c.Devices) == 0 {
		return invalidf(`no devices: define at least one under "devices", e.g. {"procs": {"driver": "process", "params": {…}}}`)
	}
	for _, name := range slices.Sorted(maps.Keys(c.Devices)) {
		if err := c.Devices[name].validate(name); err != nil {
			return err
		}
	}
	if len(c.Levels) == 0 && len(c.DefaultLevels) == 0 {
		return invalidf(`no levels: nothing would ever be fenced; say which devices fence which node with "levels" ({"n1": ["ipmi-n1"]}) or "default_levels" (["procs"])`)
	}
	for _, node := range slices.Sorted(maps.Keys(c.Levels)) {
		if err := wire.ValidNodeName(node); err != nil {
			return invalidf("levels: %v", err)
		}
		if err := c.validateLevels(fmt.Sprintf("levels[%q]", node), c.Levels[node]); err != nil {
			return err
		}
	}
	return c.validateLevels("default_levels", c.DefaultLevels)
}

func (c Config) validateLevels(what string, devices []string) error {
	for i, d := range devices {
		if _, ok := c.Devices[d]; !ok {
			return invalidf("%s[%d]: no device %q; the devices are %s (define it under \"devices\" or fix the name)",
				what, i, d, strings.Join(slices.Sorted(maps.Keys(c.Devices)), ", "))
		}
		if slices.Index(devices, d) < i {
			return invalidf("%s: device %q is listed twice; list each device once (failed levels are retried from the first)", what, d)
		}
	}
	return nil
}

func (d Device) validate(name string) error {
	if !deviceNameRE.MatchString(name) {
		return invalidf("device name %q: use 1-63 letters, digits, '.', '-' or '_', starting with a letter or digit", name)
	}
	what := fmt.Sprintf("device %q", name)
	switch {
	case d.Driver == "":
		return invalidf(`%s: no driver: set "driver" to fence-agent, ipmi, process or the absolute path of a driver binary`, what)
	case filepath.IsAbs(d.Driver):
	case strings.ContainsRune(d.Driver, '/'):
		return invalidf("%s: driver %q: give a driver's name (fence-agent, ipmi, process) or an absolute path", what, d.Driver)
	case !driverNameRE.MatchString(d.Driver):
		return invalidf("%s: driver %q: a driver name is lower-case letters, digits, '-' and '_' (it runs baton-fence-NAME)", what, d.Driver)
	}
	for _, k := range slices.Sorted(maps.Keys(d.Params)) {
		if k == "" || strings.ContainsAny(k, "=\n\r\x00") || strings.ContainsAny(d.Params[k], "\n\r\x00") {
			return invalidf("%s: params.%s: names must be non-empty without '=', and neither names nor values may hold a newline or NUL", what, k)
		}
	}
	for _, node := range slices.Sorted(maps.Keys(d.Targets)) {
		if err := wire.ValidNodeName(node); err != nil {
			return invalidf("%s: targets: %v", what, err)
		}
		t := d.Targets[node]
		if t == "" || t != strings.TrimSpace(t) || strings.ContainsAny(t, ",\n\r\x00") {
			return invalidf("%s: targets[%q] = %q: a target is a non-empty name without commas or surrounding spaces", what, node, t)
		}
	}
	return nil
}

// ApplyLevels sets g's fence levels (FenceLevels, DefaultFenceLevels) from c.
func (c Config) ApplyLevels(g *groups.Config) {
	g.FenceLevels = nil
	if len(c.Levels) > 0 {
		g.FenceLevels = make(map[string][]string, len(c.Levels))
		for n, l := range c.Levels {
			g.FenceLevels[n] = slices.Clone(l)
		}
	}
	g.DefaultFenceLevels = slices.Clone(c.DefaultLevels)
}

// Target is the name device knows node by: its entry in the device's
// Targets, or the node's own name.
func (c Config) Target(device, node string) string {
	if t, ok := c.Devices[device].Targets[node]; ok {
		return t
	}
	return node
}

// knownTargets are the targets of the nodes whose levels name device, and
// those its Targets list. Nodes that fall to DefaultLevels are not known
// until they are fenced.
func (c Config) knownTargets(device string) map[string]bool {
	ts := map[string]bool{}
	for node, l := range c.Levels {
		if slices.Contains(l, device) {
			ts[c.Target(device, node)] = true
		}
	}
	for _, t := range c.Devices[device].Targets {
		ts[t] = true
	}
	return ts
}

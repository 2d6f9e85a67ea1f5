package fencing

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/batonhq/baton/failover/groups"
)

// example is the configuration of README.md.
const example = `{
  "devices": {
    "ipmi-n1": {"driver": "ipmi", "params": {"ip": "127.0.0.1", "ipport": 9623, "username": "admin", "password": "secret", "cipher": "3"}},
    "dummy":   {"driver": "fence-agent", "params": {"agent": "fence_dummy", "status_file": "/run/dummy"}, "targets": {"n2": "plug2"}},
    "procs":   {"driver": "process", "params": {"cgroup": "/sys/fs/cgroup/pids/baton/{node}", "match": "baton agent .*--name {node}( |$)"}}
  },
  "levels": {"n1": ["ipmi-n1", "procs"], "n2": ["dummy"]},
  "default_levels": ["procs"]
}`

func TestParseExample(t *testing.T) {
	got, err := Parse([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Devices: map[string]Device{
			"ipmi-n1": {Driver: "ipmi", Params: map[string]string{"ip": "127.0.0.1", "ipport": "9623", "username": "admin", "password": "secret", "cipher": "3"}},
			"dummy":   {Driver: "fence-agent", Params: map[string]string{"agent": "fence_dummy", "status_file": "/run/dummy"}, Targets: map[string]string{"n2": "plug2"}},
			"procs":   {Driver: "process", Params: map[string]string{"cgroup": "/sys/fs/cgroup/pids/baton/{node}", "match": "baton agent .*--name {node}( |$)"}},
		},
		Levels:        map[string][]string{"n1": {"ipmi-n1", "procs"}, "n2": {"dummy"}},
		DefaultLevels: []string{"procs"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse(example) =\n%+v\nwant\n%+v", got, want)
	}
	var g groups.Config
	got.ApplyLevels(&g)
	if !reflect.DeepEqual(g.FenceLevels, want.Levels) || !reflect.DeepEqual(g.DefaultFenceLevels, want.DefaultLevels) {
		t.Errorf("ApplyLevels: FenceLevels %v, DefaultFenceLevels %v", g.FenceLevels, g.DefaultFenceLevels)
	}
	g.FenceLevels["n1"][0] = "changed"
	if got.Levels["n1"][0] != "ipmi-n1" {
		t.Error("ApplyLevels shares its slices with the Config")
	}
	for _, tt := range []struct{ device, node, want string }{
		{"dummy", "n2", "plug2"}, {"dummy", "n1", "n1"}, {"procs", "n3", "n3"}, {"nosuch", "n1", "n1"},
	} {
		if got := got.Target(tt.device, tt.node); got != tt.want {
			t.Errorf("Target(%q, %q) = %q, want %q", tt.device, tt.node, got, tt.want)
		}
	}
	if kt := got.knownTargets("procs"); !reflect.DeepEqual(kt, map[string]bool{"n1": true}) {
		t.Errorf("knownTargets(procs) = %v, want n1 only (default_levels nodes are not known)", kt)
	}
	if kt := got.knownTargets("dummy"); !reflect.DeepEqual(kt, map[string]bool{"plug2": true}) {
		t.Errorf("knownTargets(dummy) = %v, want plug2", kt)
	}
}

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fence.json")
	if err := os.WriteFile(path, []byte(`{"devices": {"p": {"driver": "process"}}, "levels": {"n1": ["q"]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), `no device "q"`) {
		t.Errorf("Load = %v; want ErrInvalidConfig naming the file and the device", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want ErrNotExist", err)
	}
}

func TestParseErrors(t *testing.T) {
	const dev = `"devices": {"p": {"driver": "process"}}`
	tests := []struct {
		name string
		in   string
		want []string // substrings of the error
	}{
		{"Empty", "  \n", []string{"empty"}},
		{"NotObject", `["x"]`, []string{"must be a JSON object"}},
		{"Null", `null`, []string{"must be a JSON object"}},
		{"SyntaxPosition", "{\n  \"devices\": {\n    \"p\": {\"driver\": \"process\",}\n  }\n}", []string{"line 3, column", "invalid character '}'"}},
		{"Truncated", `{"devices": {"p": {"driver": "process"`, []string{"line 1, column 39", "ends in the middle"}},
		{"TrailingData", `{"devices": {"p": {"driver": "process"}}, "default_levels": ["p"]} {}`, []string{"line 1, column", "after the end"}},
		{"DuplicateDevice", "{\"devices\": {\"p\": {\"driver\": \"process\"},\n \"p\": {\"driver\": \"ipmi\"}}, \"default_levels\": [\"p\"]}", []string{"line 2, column 2", "devices.p is given twice"}},
		{"DuplicateParam", `{"devices": {"p": {"driver": "process", "params": {"a": "1", "a": "2"}}}, "default_levels": ["p"]}`, []string{"devices.p.params.a is given twice"}},
		{"UnknownTopField", `{` + dev + `, "level": {"n1": ["p"]}}`, []string{`unknown field "level"`, "devices, levels, default_levels"}},
		{"UnknownDeviceField", `{"devices": {"p": {"driver": "process", "parameters": {}}}, "default_levels": ["p"]}`, []string{`device "p": unknown field "parameters"`, "driver, params, targets"}},
		{"DevicesNotObject", `{"devices": ["p"]}`, []string{"devices: want an object"}},
		{"DeviceNotObject", `{"devices": {"p": "process"}, "default_levels": ["p"]}`, []string{`device "p": want an object`}},
		{"DriverNotString", `{"devices": {"p": {"driver": 1}}, "default_levels": ["p"]}`, []string{`device "p": driver: want a string`}},
		{"ParamBool", `{"devices": {"p": {"driver": "process", "params": {"lanplus": true}}}, "default_levels": ["p"]}`, []string{`params.lanplus: want a string or a number`}},
		{"ParamObject", `{"devices": {"p": {"driver": "process", "params": {"x": {}}}}, "default_levels": ["p"]}`, []string{`params.x: want a string`}},
		{"LevelsNotLists", `{` + dev + `, "levels": {"n1": "p"}}`, []string{"levels: want an object of device lists"}},
		{"DefaultNotList", `{` + dev + `, "default_levels": "p"}`, []string{"default_levels: want a list"}},
		{"NoDevices", `{"levels": {"n1": ["p"]}}`, []string{"no devices"}},
		{"NoLevels", `{` + dev + `}`, []string{"no levels", "nothing would ever be fenced"}},
		{"UnknownDeviceInLevels", `{` + dev + `, "levels": {"n1": ["p", "ipmi"]}}`, []string{`levels["n1"][1]: no device "ipmi"`, "the devices are p"}},
		{"UnknownDeviceInDefault", `{` + dev + `, "default_levels": ["q"]}`, []string{`default_levels[0]: no device "q"`}},
		{"DeviceTwiceInLevel", `{` + dev + `, "levels": {"n1": ["p", "p"]}}`, []string{`device "p" is listed twice`}},
		{"BadNodeInLevels", `{` + dev + `, "levels": {"n.1": ["p"]}}`, []string{`node name "n.1" is invalid`}},
		{"NoDriver", `{"devices": {"p": {"params": {"a": "1"}}}, "default_levels": ["p"]}`, []string{`device "p": no driver`, "fence-agent, ipmi, process"}},
		{"RelativeDriverPath", `{"devices": {"p": {"driver": "bin/baton-fence-process"}}, "default_levels": ["p"]}`, []string{"an absolute path"}},
		{"BadDriverName", `{"devices": {"p": {"driver": "Process X"}}, "default_levels": ["p"]}`, []string{"baton-fence-NAME"}},
		{"BadDeviceName", `{"devices": {"p q": {"driver": "process"}}, "default_levels": ["p q"]}`, []string{`device name "p q"`}},
		{"EmptyParamName", `{"devices": {"p": {"driver": "process", "params": {"": "1"}}}, "default_levels": ["p"]}`, []string{"names must be non-empty"}},
		{"NewlineInParam", `{"devices": {"p": {"driver": "process", "params": {"a": "1\naction=on"}}}, "default_levels": ["p"]}`, []string{"newline"}},
		{"CommaInTarget", `{"devices": {"p": {"driver": "process", "targets": {"n1": "a,b"}}}, "default_levels": ["p"]}`, []string{`targets["n1"] = "a,b"`}},
		{"EmptyTarget", `{"devices": {"p": {"driver": "process", "targets": {"n1": ""}}}, "default_levels": ["p"]}`, []string{`targets["n1"] = ""`}},
		{"BadTargetNode", `{"devices": {"p": {"driver": "process", "targets": {"n 1": "x"}}}, "default_levels": ["p"]}`, []string{`node name "n 1"`}},
		{"TooDeep", `{"devices": {"p": {"driver": "process", "params": {"a": ` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}}}}`, []string{"nested too deeply"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Parse(%s) = %v, want ErrInvalidConfig", tt.in, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Parse(%s) = %q, want it to say %q", tt.in, err, w)
				}
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"AbsoluteDriver", `{"devices": {"p": {"driver": "/opt/acme/acme-fence"}}, "default_levels": ["p"]}`},
		{"NullFields", `{"devices": {"p": {"driver": "process", "params": null, "targets": null}}, "levels": null, "default_levels": ["p"]}`},
		// An empty list: the node is never fenced by a device (its groups
		// wait for an operator's confirmation).
		{"NodeWithoutDevices", `{"devices": {"p": {"driver": "process"}}, "levels": {"n1": []}, "default_levels": ["p"]}`},
		{"NumberParam", `{"devices": {"p": {"driver": "ipmi", "params": {"ipport": 9623, "power_timeout": 1.5e1}}}, "default_levels": ["p"]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse([]byte(tt.in)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// FuzzParse: Parse never panics, what it accepts is valid, and a valid
// configuration written back as JSON parses to the same thing.
func FuzzParse(f *testing.F) {
	f.Add([]byte(example))
	f.Add([]byte(`{"devices": {"p": {"driver": "process", "params": {"a": 1}}}, "default_levels": ["p"]}`))
	f.Add([]byte(`{"devices": {"p": {"driver": "process"}, "p": {}}, "levels": {"n1": ["p", "p"]}}`))
	f.Add([]byte(`{"devices": {"p": {"driver": "/x", "targets": {"n1": "a"}}}, "levels": {"n1": []}} x`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Parse error %v does not wrap ErrInvalidConfig", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Parse accepted a configuration Validate rejects: %v", err)
		}
		b, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse(b)
		if err != nil {
			t.Fatalf("Parse(Marshal(cfg)) = %v\n%s", err, b)
		}
		if !reflect.DeepEqual(normalize(cfg), normalize(again)) {
			t.Fatalf("round trip changed the configuration:\n%+v\n%+v", cfg, again)
		}
	})
}

// normalize makes empty maps and slices nil, as omitempty writes them.
func normalize(c Config) Config {
	out := Config{Devices: map[string]Device{}}
	for n, d := range c.Devices {
		if len(d.Params) == 0 {
			d.Params = nil
		}
		if len(d.Targets) == 0 {
			d.Targets = nil
		}
		out.Devices[n] = d
	}
	if len(c.Levels) > 0 {
		out.Levels = map[string][]string{}
		for n, l := range c.Levels {
			if len(l) == 0 {
				l = nil
			}
			out.Levels[n] = l
		}
	}
	if len(c.DefaultLevels) > 0 {
		out.DefaultLevels = c.DefaultLevels
	}
	return out
}

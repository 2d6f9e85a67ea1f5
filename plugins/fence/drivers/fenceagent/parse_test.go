package fenceagent

import (
	"os"
	"reflect"
	"testing"

	"github.com/batonhq/baton/plugins/fence"
)

func TestParseList(t *testing.T) {
	tests := []struct {
		name string
		out  string
		want []fence.Target
	}{
		{"Empty", "", nil},
		{"PlugAndAlias", "fake_port_1,fake\nfake_port_2,fake\n", []fence.Target{{Name: "fake_port_1", Alias: "fake"}, {Name: "fake_port_2", Alias: "fake"}}},
		{"PlugOnly", "1\n2\n", []fence.Target{{Name: "1", Alias: ""}, {Name: "2", Alias: ""}}},
		{"BlankLinesAndSpaces", "\n  n1 , web one \r\n\n", []fence.Target{{Name: "n1", Alias: "web one"}}},
		{"DuplicateFirstWins", "n1,a\nn1,b\n", []fence.Target{{Name: "n1", Alias: "a"}}},
		{"EmptyName", ",alias\n", nil},
		{"NameWithSpace", "two words,x\n", nil},
		{"ControlCharInAlias", "n1,a\x01b\n", []fence.Target{{Name: "n1", Alias: ""}}},
		{"InvalidUTF8Name", "n\xff1\n", nil},
		{"NoTrailingNewline", "n1", []fence.Target{{Name: "n1", Alias: ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseList([]byte(tt.out)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseList(%q) = %#v, want %#v", tt.out, got, tt.want)
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		out  string
		want fence.PowerState
	}{
		{"Status: ON\n", fence.PowerOn},
		{"Status: OFF\n", fence.PowerOff},
		{"  Status:   off  \n", fence.PowerOff},
		{"", fence.PowerUnknown},
		{"Status: MAYBE\n", fence.PowerUnknown},
		{"Success: Powered OFF\n", fence.PowerUnknown},
		{"noise\nStatus: OFF\n", fence.PowerOff},
	}
	for _, tt := range tests {
		t.Run(tt.out, func(t *testing.T) {
			if got := ParseStatus([]byte(tt.out)); got != tt.want {
				t.Errorf("ParseStatus(%q) = %v, want %v", tt.out, got, tt.want)
			}
		})
	}
}

func TestParseMetadata(t *testing.T) {
	b, err := os.ReadFile("testdata/fence_dummy.xml")
	if err != nil {
		t.Fatal(err)
	}
	md, err := ParseMetadata(b)
	if err != nil {
		t.Fatal(err)
	}
	if md.Name != "fence_dummy" || md.ShortDesc != "Dummy fence agent" {
		t.Errorf("name, shortdesc = %q, %q", md.Name, md.ShortDesc)
	}
	for _, p := range []string{"action", "status_file", "type", "verbose"} {
		if !md.HasParameter(p) {
			t.Errorf("parameter %q missing", p)
		}
	}
	if md.HasParameter("plug") {
		t.Error("fence_dummy has no plug parameter")
	}
	for _, a := range []string{"on", "off", "reboot", "status", "metadata"} {
		if !md.HasAction(a) {
			t.Errorf("action %q missing", a)
		}
	}
	if md.HasAction("list") {
		t.Error("fence_dummy has no list action")
	}

	ib, err := os.ReadFile("testdata/fence_ipmilan.xml")
	if err != nil {
		t.Fatal(err)
	}
	ipmi, err := ParseMetadata(ib)
	if err != nil {
		t.Fatal(err)
	}
	if !ipmi.HasParameter("plug") || !ipmi.HasParameter("ipport") || ipmi.HasAction("list") || !ipmi.HasAction("reboot") {
		t.Errorf("fence_ipmilan metadata: plug %v ipport %v list %v reboot %v; want plug, ipport, reboot and no list",
			ipmi.HasParameter("plug"), ipmi.HasParameter("ipport"), ipmi.HasAction("list"), ipmi.HasAction("reboot"))
	}

	bad := []struct{ name, in string }{
		{"Empty", ""},
		{"NotXML", "Traceback (most recent call last):"},
		{"Truncated", `<?xml version="1.0" ?><resource-agent name="fence_x" shortdesc="x"><parameters>`},
		{"NoName", `<resource-agent shortdesc="x"></resource-agent>`},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseMetadata([]byte(tt.in)); err == nil {
				t.Errorf("ParseMetadata(%q) succeeded", tt.in)
			}
		})
	}
	t.Run("WarningBeforeXML", func(t *testing.T) {
		md, err := ParseMetadata(append([]byte("DeprecationWarning: pipes\n"), b...))
		if err != nil || md.Name != "fence_dummy" {
			t.Errorf("got %v, %v", md, err)
		}
	})
}

func FuzzParseList(f *testing.F) {
	f.Add([]byte("fake_port_1,fake\nfake_port_2,fake\n"))
	f.Add([]byte("n1\n\n n2 , x\r\n"))
	f.Add([]byte(",\n,,\n\xff\x00"))
	f.Fuzz(func(t *testing.T, out []byte) {
		ts := ParseList(out)
		seen := map[string]bool{}
		for _, tg := range ts {
			if !validName(tg.Name) || seen[tg.Name] {
				t.Fatalf("ParseList returned bad or repeated name %q", tg.Name)
			}
			if !validText(tg.Alias) {
				t.Fatalf("ParseList returned alias %q with control characters", tg.Alias)
			}
			seen[tg.Name] = true
		}
		if len(ts) > maxTargets {
			t.Fatalf("%d targets", len(ts))
		}
	})
}

func FuzzParseStatus(f *testing.F) {
	f.Add([]byte("Status: ON\n"))
	f.Add([]byte("Status: OFF\n"))
	f.Add([]byte("Status:\n"))
	f.Fuzz(func(t *testing.T, out []byte) {
		switch ParseStatus(out) {
		case fence.PowerOn, fence.PowerOff, fence.PowerUnknown:
		default:
			t.Fatal("ParseStatus returned an invalid state")
		}
	})
}

func FuzzParseMetadata(f *testing.F) {
	for _, name := range []string{"testdata/fence_dummy.xml", "testdata/fence_ipmilan.xml"} {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`<resource-agent name="fence_x" shortdesc="x"><parameters><parameter name="plug" required="1"><content type="string" default="a"/><shortdesc lang="en">p</shortdesc></parameter></parameters><actions><action name="list"/></actions></resource-agent>`))
	f.Add([]byte(`<resource-agent name="">`))
	f.Fuzz(func(t *testing.T, out []byte) {
		md, err := ParseMetadata(out)
		if err != nil {
			return
		}
		if !validName(md.Name) {
			t.Fatalf("accepted agent name %q", md.Name)
		}
		seen := map[string]bool{}
		for _, p := range md.Parameters {
			if !validParam(p.Name) || seen[p.Name] {
				t.Fatalf("bad or repeated parameter name %q", p.Name)
			}
			seen[p.Name] = true
			if !validText(p.ShortDesc) || !validText(p.Default) {
				t.Fatalf("parameter %q: control characters in description or default", p.Name)
			}
		}
	})
}

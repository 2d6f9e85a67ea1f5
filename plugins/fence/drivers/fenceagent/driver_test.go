package fenceagent_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/batonhq/baton/plugins/fence"
	"github.com/batonhq/baton/plugins/fence/drivers/fenceagent"
	"github.com/batonhq/baton/plugins/fence/drivers/ipmi/ipmisim"
	"github.com/batonhq/baton/plugins/fence/fencetest"
)

func configured(t *testing.T, d fence.Driver, params map[string]string) fence.Driver {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Configure(ctx, params); err != nil {
		t.Fatalf("Configure(%v): %v", params, err)
	}
	return d
}

func TestConformanceFenceDummy(t *testing.T) {
	t.Parallel()
	fencetest.NeedTool(t, "fence_dummy")
	status := fencetest.DummyStatusFile(t, "on")
	params := map[string]string{"agent": "fence_dummy", "status_file": status, "host_list": "node1"}
	fencetest.Run(t, func(t *testing.T) fence.Driver {
		return configured(t, fenceagent.New(), params)
	}, fencetest.Options{Target: "node1", Hanging: func(t *testing.T) fence.Driver {
		// random_sleep_range=60: fence_dummy first sleeps 1 to 60 s.
		return configured(t, fenceagent.New(), map[string]string{
			"agent": "fence_dummy", "status_file": fencetest.DummyStatusFile(t, "on"), "host_list": "node1", "random_sleep_range": "60",
		})
	}})
}

// The driver as a real plugin process (go-plugin over gRPC) driving the
// real fence_dummy.
func TestConformanceFenceDummyPlugin(t *testing.T) {
	t.Parallel()
	fencetest.NeedTool(t, "fence_dummy")
	bin := fencetest.BuildDriver(t, "github.com/batonhq/baton/plugins/fence/drivers/fenceagent/cmd/baton-fence-agent")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := fence.Open(ctx, fence.Config{Path: bin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	status := fencetest.DummyStatusFile(t, "on")
	configured(t, p, map[string]string{"agent": "fence_dummy", "status_file": status, "host_list": "node1"})
	fencetest.Run(t, func(t *testing.T) fence.Driver { return p }, fencetest.Options{Target: "node1", Hanging: func(t *testing.T) fence.Driver {
		// A second plugin process whose fence_dummy sleeps 1 to 60 s first.
		h, err := fence.Open(ctx, fence.Config{Path: bin})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return configured(t, h, map[string]string{
			"agent": "fence_dummy", "status_file": fencetest.DummyStatusFile(t, "on"), "host_list": "node1", "random_sleep_range": "60",
		})
	}})
}

func TestFenceDummyDetails(t *testing.T) {
	t.Parallel()
	fencetest.NeedTool(t, "fence_dummy")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("OffWritesStatusFile", func(t *testing.T) {
		status := fencetest.DummyStatusFile(t, "on")
		d := configured(t, fenceagent.New(), map[string]string{"agent": "fence_dummy", "status_file": status, "host_list": "node1"})
		if err := d.Off(ctx, "node1"); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(status); string(b) != "off" {
			t.Errorf("status file holds %q after Off, want off", b)
		}
	})
	t.Run("TrailingNewlineIsAnError", func(t *testing.T) {
		status := fencetest.DummyStatusFile(t, "off\n")
		d := configured(t, fenceagent.New(), map[string]string{"agent": "fence_dummy", "status_file": status, "host_list": "node1"})
		st, err := d.Status(ctx, "node1")
		if !errors.Is(err, fence.ErrFailed) {
			t.Errorf("Status with \"off\\n\" in the file = %v, %v; want ErrFailed (fence_dummy exits 1)", st, err)
		}
	})
	t.Run("MetadataFromAgent", func(t *testing.T) {
		d := configured(t, fenceagent.New(), map[string]string{"agent": "fence_dummy", "status_file": fencetest.DummyStatusFile(t, "on"), "host_list": "node1"})
		md, err := d.Metadata(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if md.Name != "fence-agent:fence_dummy" {
			t.Errorf("Name = %q", md.Name)
		}
		found := false
		for _, p := range md.Parameters {
			found = found || p.Name == "status_file"
			if p.Name == "action" {
				t.Error("metadata offers the reserved parameter action")
			}
		}
		if !found {
			t.Error("status_file (an agent parameter) missing from metadata")
		}
	})
	t.Run("ConfigureErrors", func(t *testing.T) {
		tests := []struct {
			name   string
			params map[string]string
		}{
			{"NoAgent", map[string]string{"host_list": "n1"}},
			{"AgentNotFenceName", map[string]string{"agent": "rm", "host_list": "n1"}},
			{"AgentMissing", map[string]string{"agent": "fence_baton_does_not_exist", "host_list": "n1"}},
			{"UnknownAgentParameter", map[string]string{"agent": "fence_dummy", "host_list": "n1", "bogus": "1"}},
			{"ReservedAction", map[string]string{"agent": "fence_dummy", "host_list": "n1", "action": "off"}},
			{"NewlineInValue", map[string]string{"agent": "fence_dummy", "host_list": "n1", "status_file": "/tmp/x\naction=off"}},
			{"PluglessNeedsHostList", map[string]string{"agent": "fence_dummy"}},
			{"PluglessNoHostMap", map[string]string{"agent": "fence_dummy", "host_map": "n1:1"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if err := fenceagent.New().Configure(ctx, tt.params); !errors.Is(err, fence.ErrInvalidConfig) {
					t.Errorf("Configure(%v) = %v, want ErrInvalidConfig", tt.params, err)
				}
			})
		}
	})
	t.Run("DeadlineKillsAgent", func(t *testing.T) {
		// random_sleep_range=60 makes fence_dummy sleep 1 to 60 s first.
		d := configured(t, fenceagent.New(), map[string]string{
			"agent": "fence_dummy", "status_file": fencetest.DummyStatusFile(t, "on"), "host_list": "node1", "random_sleep_range": "60",
		})
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := d.Off(short, "node1")
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("Off past its deadline took %v", took)
		}
		if !errors.Is(err, fence.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Off past its deadline = %v, want ErrTimeout and context.DeadlineExceeded", err)
		}
	})
	t.Run("NotConfigured", func(t *testing.T) {
		if _, err := fenceagent.New().Status(ctx, "node1"); !errors.Is(err, fence.ErrNotConfigured) {
			t.Errorf("Status before Configure = %v, want ErrNotConfigured", err)
		}
	})
}

// fence_ipmilan (through the fence-agent driver) against ipmi_sim.
func TestConformanceFenceIPMILan(t *testing.T) {
	t.Parallel()
	fencetest.NeedTool(t, "fence_ipmilan")
	sim := ipmisim.Start(t)
	params := map[string]string{
		"agent": "fence_ipmilan", "host_list": "node1",
		"ip": sim.Host, "ipport": strconv.Itoa(sim.Port), "username": sim.User, "password": sim.Password,
		"lanplus": "1",
		// Without a cipher suite, ipmitool first asks ipmi_sim for the list
		// of suites, gets no answer and waits ~10 s per call.
		"cipher": "3",
		// fence_ipmilan sleeps power_wait (default 2 s) after each on/off;
		// the simulator switches at once.
		"power_wait": "0",
	}
	fencetest.Run(t, func(t *testing.T) fence.Driver {
		return configured(t, fenceagent.New(), params)
	}, fencetest.Options{Target: "node1", Hanging: func(t *testing.T) fence.Driver {
		hang := map[string]string{}
		for k, v := range params {
			hang[k] = v
		}
		hang["ipport"] = "9" // a loopback port where no BMC answers
		return configured(t, fenceagent.New(), hang)
	}})

	t.Run("WrongPassword", func(t *testing.T) {
		bad := map[string]string{}
		for k, v := range params {
			bad[k] = v
		}
		bad["password"] = "wrong"
		d := configured(t, fenceagent.New(), bad)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := d.Status(ctx, "node1"); !errors.Is(err, fence.ErrFailed) {
			t.Errorf("Status with a wrong password = %v, want ErrFailed", err)
		}
		if on, _ := sim.Power(); !on {
			t.Error("the simulated node is off after the suite; it should end on")
		}
	})
}

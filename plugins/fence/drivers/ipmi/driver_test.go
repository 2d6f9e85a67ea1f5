package ipmi_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/batonhq/baton/plugins/fence"
	"github.com/batonhq/baton/plugins/fence/drivers/ipmi"
	"github.com/batonhq/baton/plugins/fence/drivers/ipmi/ipmisim"
	"github.com/batonhq/baton/plugins/fence/fencetest"
)

func simParams(sim *ipmisim.Sim) map[string]string {
	return map[string]string{
		"ip": sim.Host, "ipport": strconv.Itoa(sim.Port), "username": sim.User, "password": sim.Password,
		"host_list": "node1",
		// ipmi_sim does not answer the cipher suite discovery ipmitool does
		// without -C; that costs ~10 s per call.
		"cipher": "3",
	}
}

func with(p map[string]string, kv ...string) map[string]string {
	q := map[string]string{}
	for k, v := range p {
		q[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		q[kv[i]] = kv[i+1]
	}
	return q
}

func configured(t *testing.T, d fence.Driver, p map[string]string) fence.Driver {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Configure(ctx, p); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return d
}

func TestConformance(t *testing.T) {
	t.Parallel()
	sim := ipmisim.Start(t)
	for _, method := range []string{"onoff", "cycle"} {
		t.Run(method, func(t *testing.T) {
			p := with(simParams(sim), "method", method)
			fencetest.Run(t, func(t *testing.T) fence.Driver { return configured(t, ipmi.New(), p) },
				fencetest.Options{Target: "node1", Hanging: func(t *testing.T) fence.Driver {
					// A loopback port where no BMC answers.
					return configured(t, ipmi.New(), with(p, "ipport", "9"))
				}})
		})
	}
}

// The IPMI driver as a real plugin process.
func TestConformancePlugin(t *testing.T) {
	t.Parallel()
	sim := ipmisim.Start(t)
	bin := fencetest.BuildDriver(t, "github.com/batonhq/baton/plugins/fence/drivers/ipmi/cmd/baton-fence-ipmi")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := fence.Open(ctx, fence.Config{Path: bin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	configured(t, p, simParams(sim))
	fencetest.Run(t, func(t *testing.T) fence.Driver { return p }, fencetest.Options{Target: "node1", Hanging: func(t *testing.T) fence.Driver {
		h, err := fence.Open(ctx, fence.Config{Path: bin})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return configured(t, h, with(simParams(sim), "ipport", "9")) // no BMC there
	}})
}

func TestSimulatorSeesPower(t *testing.T) {
	t.Parallel()
	sim := ipmisim.Start(t)
	d := configured(t, ipmi.New(), simParams(sim))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if err := d.Off(ctx, "node1"); err != nil {
		t.Fatal(err)
	}
	if on, err := sim.Power(); err != nil || on {
		t.Errorf("after Off the simulated node is on=%v (%v), want off", on, err)
	}
	// A change behind the BMC's back shows in Status.
	if err := sim.SetPower(true); err != nil {
		t.Fatal(err)
	}
	if st, err := d.Status(ctx, "node1"); err != nil || st != fence.PowerOn {
		t.Errorf("Status after the node came on by itself = %v, %v; want on", st, err)
	}

	t.Run("WrongPassword", func(t *testing.T) {
		d := configured(t, ipmi.New(), with(simParams(sim), "password", "wrong"))
		if _, err := d.Status(ctx, "node1"); !errors.Is(err, fence.ErrFailed) {
			t.Errorf("Status with a wrong password = %v, want ErrFailed", err)
		}
	})
	t.Run("NoBMCDeadline", func(t *testing.T) {
		// A loopback port nobody listens on: ipmitool would retry for ~6 s;
		// the call's deadline kills it first.
		d := configured(t, ipmi.New(), with(simParams(sim), "ipport", "9"))
		short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := d.Status(short, "node1")
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("Status past its deadline took %v", took)
		}
		if !errors.Is(err, fence.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Status without a BMC past the deadline = %v, want ErrTimeout and context.DeadlineExceeded", err)
		}
	})
}

func TestConfigureErrors(t *testing.T) {
	fencetest.NeedTool(t, "ipmitool")
	good := map[string]string{"ip": "127.0.0.1", "username": "admin", "host_list": "n1"}
	tests := []struct {
		name string
		p    map[string]string
	}{
		{"NoIP", with(good, "ip", "")},
		{"IPLooksLikeFlag", with(good, "ip", "-oops")},
		{"NoUser", with(good, "username", "")},
		{"BadPort", with(good, "ipport", "70000")},
		{"BadCipher", with(good, "cipher", "x")},
		{"BadPriv", with(good, "privlvl", "root")},
		{"BadMethod", with(good, "method", "yank")},
		{"TwoNodes", with(good, "host_list", "n1,n2")},
		{"NoNode", with(good, "host_list", "")},
		{"Unknown", with(good, "lanplus", "1")},
		{"NoTool", with(good, "ipmitool_path", "/nonexistent/ipmitool")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := ipmi.New().Configure(context.Background(), tt.p); !errors.Is(err, fence.ErrInvalidConfig) {
				t.Errorf("Configure(%v) = %v, want ErrInvalidConfig", tt.p, err)
			}
		})
	}
	if err := ipmi.New().Configure(context.Background(), good); err != nil {
		t.Errorf("Configure(%v) = %v", good, err)
	}
}

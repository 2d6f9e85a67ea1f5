package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/plugins/fence/drivers/ipmi/ipmisim"
	"github.com/batonhq/baton/plugins/fence/fencetest"
)

// TestManualFenceThroughRealDevices fences nodes through the server with
// real devices behind the plugin drivers: an IPMI BMC (OpenIPMI's ipmi_sim,
// driven by ipmitool) and a ClusterLabs fence agent (fence_dummy). One node's
// first level is a BMC that refuses the password, so the second level must
// fence it; every attempt is an event with its result.
func TestManualFenceThroughRealDevices(t *testing.T) {
	requirePrivileged(t)
	fencetest.NeedTool(t, "fence_dummy")
	bmc, wrong := ipmisim.Start(t), ipmisim.Start(t)
	dummy := fencetest.DummyStatusFile(t, "on")

	c := &cluster{t: t, natsURL: startNATS(t), dataDir: t.TempDir(), prefix: "it" + uniq(), agents: map[string]*proc{}}
	n1, n2 := c.node(1), c.node(2)
	ipmiParams := func(s *ipmisim.Sim, password string) map[string]string {
		return map[string]string{"ip": s.Host, "ipport": strconv.Itoa(s.Port), "username": s.User, "password": password, "cipher": "3"}
	}
	cfg := map[string]any{
		"devices": map[string]any{
			"bmc-n1": map[string]any{"driver": "ipmi", "params": ipmiParams(bmc, bmc.Password)},
			"bmc-n2": map[string]any{"driver": "ipmi", "params": ipmiParams(wrong, "not-the-password")},
			"pdu-n2": map[string]any{"driver": "fence-agent", "params": map[string]string{"agent": "fence_dummy", "status_file": dummy}},
		},
		"levels": map[string][]string{n1: {"bmc-n1"}, n2: {"bmc-n2", "pdu-n2"}},
	}
	b, _ := json.Marshal(cfg)
	fenceFile := filepath.Join(c.dataDir, "fence.json")
	if err := os.WriteFile(fenceFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	c.apiAddr = freeAddr(t)
	c.api = "http://" + c.apiAddr
	c.serverArgs = []string{"--fence-config", fenceFile}
	c.startServer()
	c.startAgent(n1)
	c.startAgent(n2)
	t.Cleanup(c.killWorkloads)
	c.waitNodesRunning(2)

	fenceEvents := func(node string) []string {
		var out []string
		for _, e := range c.events() {
			if e.Kind == "fence" && e.Node == node {
				out = append(out, e.Detail)
			}
		}
		return out
	}
	waitFenceResult := func(node, want string) []string {
		var evs []string
		c.eventually(90*time.Second, node+"'s fence ends with "+want, func() error {
			evs = fenceEvents(node)
			if len(evs) == 0 || !strings.Contains(evs[len(evs)-1], want) {
				return fmt.Errorf("fence events so far: %q", evs)
			}
			return nil
		})
		return evs
	}

	// n1 through the CLI: the BMC powers it off.
	out, err := exec.Command(batonBin, "node", "fence", n1, "--api", c.api).CombinedOutput()
	if err != nil {
		t.Fatalf("baton node fence %s: %v\n%s", n1, err, out)
	}
	evs := waitFenceResult(n1, "confirmed off")
	if last := evs[len(evs)-1]; !strings.Contains(last, "level 0 (bmc-n1)") {
		t.Errorf("%s was confirmed off by %q, want level 0 (bmc-n1)", n1, last)
	}
	if on, err := bmc.Power(); err != nil || on {
		t.Errorf("after the fence the BMC says power on=%v (%v), want off", on, err)
	}

	// n2 through the API: its BMC refuses, the fence agent of level 1 fences.
	c.mustDo("POST", "/v1/nodes/"+n2+"/fence", map[string]any{}, 202)
	evs = waitFenceResult(n2, "confirmed off")
	trail := strings.Join(evs, "\n  ")
	failed, fenced := firstLineWith(evs, "level 0 (bmc-n2) failed"), firstLineWith(evs, "level 1 (pdu-n2): confirmed off")
	if failed < 0 || fenced < 0 || failed > fenced {
		t.Errorf("%s's fence events do not show level 0 failing then level 1 confirming:\n  %s", n2, trail)
	}
	if b, err := os.ReadFile(dummy); err != nil || strings.TrimSpace(string(b)) != "off" {
		t.Errorf("fence_dummy's status file says %q (%v), want off", b, err)
	}
	if on, err := wrong.Power(); err != nil || !on {
		t.Errorf("the BMC that refused the password changed its power: on=%v (%v)", on, err)
	}
	t.Logf("fence events:\n  %s: %s\n  %s: %s", n1, strings.Join(fenceEvents(n1), " | "), n2, strings.Join(evs, " | "))
}

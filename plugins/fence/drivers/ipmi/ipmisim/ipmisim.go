// Package ipmisim runs OpenIPMI's ipmi_sim BMC simulator for tests: on
// 127.0.0.1 at a free UDP port, with an admin user and a chassis_control
// script that keeps the simulated node's power state in a file. Every
// simulator is killed (its whole process group) in t.Cleanup.
package ipmisim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/plugins/fence/fencetest"
)

// Sim is a running ipmi_sim.
type Sim struct {
	Host      string // 127.0.0.1
	Port      int
	User      string
	Password  string
	PowerFile string // "1" (on) or "0" (off), written by the chassis script
}

// Admin credentials of every simulator.
const (
	User     = "admin"
	Password = "baton-secret"
)

// chassisScript is what ipmi_sim runs for chassis_control: "$1 get power"
// must print "power:N"; "$1 set power N" sets it. No newline in the file.
const chassisScript = `#!/bin/sh
f=%q
case "$2" in
get) printf 'power:%%s\n' "$(cat "$f" 2>/dev/null || echo 1)" ;;
set) [ "$3" = power ] && printf '%%s' "$4" > "$f.tmp" && mv "$f.tmp" "$f" ;;
esac
exit 0
`

const lanConf = `name "baton"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 %d
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  chassis_control "%s 0x20"
  user 2 true "%s" "%s" admin 10 none md2 md5 straight
`

const emuCmd = `mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr
mc_enable 0x20
`

// Start runs a simulator whose node is powered on, and waits until
// ipmitool gets an answer from it. It calls fencetest.Unavailable when
// ipmi_sim or ipmitool is missing.
func Start(t testing.TB) *Sim {
	t.Helper()
	simBin := fencetest.NeedTool(t, "ipmi_sim")
	fencetest.NeedTool(t, "ipmitool")
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // the free port may be taken meanwhile
		s, err := start(t, simBin)
		if err == nil {
			return s
		}
		lastErr = err
	}
	t.Fatalf("ipmisim: %v", lastErr)
	return nil
}

func start(t testing.TB, simBin string) (*Sim, error) {
	dir, err := os.MkdirTemp("", "baton-ipmisim-")
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	port, err := freeUDPPort()
	if err != nil {
		return nil, err
	}
	s := &Sim{Host: "127.0.0.1", Port: port, User: User, Password: Password, PowerFile: filepath.Join(dir, "power")}
	script := filepath.Join(dir, "chassis.sh")
	files := map[string]string{
		script:                         fmt.Sprintf(chassisScript, s.PowerFile),
		filepath.Join(dir, "lan.conf"): fmt.Sprintf(lanConf, port, script, User, Password),
		filepath.Join(dir, "emu.cmd"):  emuCmd,
		s.PowerFile:                    "1",
	}
	for name, body := range files {
		if err := os.WriteFile(name, []byte(body), 0o700); err != nil {
			return nil, err
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "state"), 0o700); err != nil {
		return nil, err
	}
	cmd := exec.Command(simBin, "-c", filepath.Join(dir, "lan.conf"), "-f", filepath.Join(dir, "emu.cmd"),
		"-n", "-s", filepath.Join(dir, "state"))
	cmd.Dir = dir
	log, err := os.Create(filepath.Join(dir, "sim.log"))
	if err != nil {
		return nil, err
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start ipmi_sim: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	// Wait for the simulator to answer, with a deadline.
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err := s.ipmitool(ctx, "chassis", "power", "status")
		cancel()
		if err == nil {
			break
		}
		select {
		case werr := <-exited:
			exited <- werr
			stop()
			b, _ := os.ReadFile(filepath.Join(dir, "sim.log"))
			return nil, fmt.Errorf("ipmi_sim exited (%v): %s", werr, b)
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("ipmi_sim on port %d did not answer in 15 s: %v", port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(stop)
	return s, nil
}

// Power reads the simulated node's power state.
func (s *Sim) Power() (on bool, err error) {
	b, err := os.ReadFile(s.PowerFile)
	if err != nil {
		return false, err
	}
	switch strings.TrimSpace(string(b)) {
	case "1":
		return true, nil
	case "0":
		return false, nil
	}
	return false, fmt.Errorf("ipmisim: power file holds %q", b)
}

// SetPower sets the simulated node's power state behind the BMC's back.
func (s *Sim) SetPower(on bool) error {
	v := "0"
	if on {
		v = "1"
	}
	return os.WriteFile(s.PowerFile, []byte(v), 0o600)
}

// ipmitool runs ipmitool against the simulator (cipher suite 3: without -C,
// ipmitool first asks for the cipher suites, which ipmi_sim does not
// answer, and waits about 10 s).
func (s *Sim) ipmitool(ctx context.Context, args ...string) (string, error) {
	base := []string{"-I", "lanplus", "-C", "3", "-H", s.Host, "-p", strconv.Itoa(s.Port), "-U", s.User, "-E", "-N", "1", "-R", "1"}
	cmd := exec.CommandContext(ctx, "ipmitool", append(base, args...)...)
	cmd.Env = append(os.Environ(), "IPMI_PASSWORD="+s.Password)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), errors.Join(err, errors.New(strings.TrimSpace(string(out))))
	}
	return string(out), nil
}

func freeUDPPort() (int, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

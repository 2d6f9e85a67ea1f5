package integration

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// A netLab is a private network for one test: a Linux bridge in the host's
// network namespace and, per host, a network namespace joined to the bridge
// by a veth pair. Its addresses are a /24 of 198.18.0.0/15 (RFC 2544's
// range for benchmarking networks, which nothing routes), chosen per test
// and claimed by creating the bridge, so parallel test runs never share
// one. The namespaces have no default route: they reach the bridge's
// address (where the test's NATS listens) and each other, nothing else.
//
//	host namespace: NATS on 198.18.S.1, baton server, the test
//	  bridge btnSSS (198.18.S.1/24)
//	     ├── btnSSSv1 ══ eth0 198.18.S.11  namespace baton-PID-SSS-1: agent n1 and its workloads
//	     ├── btnSSSv2 ══ eth0 198.18.S.12  namespace baton-PID-SSS-2: agent n2 ...
//
// cut and heal partition a host (its bridge port down, or its traffic
// dropped by iptables inside its namespace). Everything is removed in
// t.Cleanup, and the removal is checked.
type netLab struct {
	t        testing.TB
	subnet   int    // S: the third octet's index in 198.18.0.0/15, 0..511
	bridge   string // btnSSS
	bridgeIP string
	prefix   netip.Prefix

	mu    sync.Mutex
	hosts []*netHost
}

// netHost is one host of a lab.
type netHost struct {
	name string // the test's name for it (the node name)
	ns   string // network namespace, /run/netns/NS
	port string // the veth end on the bridge, in the host namespace
	ip   string
	cut  cutMode // how it is cut off now; "" when connected
}

// cutMode is how a host is cut off.
type cutMode string

const (
	cutLink cutMode = "link" // its bridge port is down, as if its cable were pulled
	cutDrop cutMode = "drop" // iptables inside its namespace drops everything on eth0
)

// labLinks records every bridge and namespace this process created, for the
// leak check at the end of the run.
var labLinks struct {
	sync.Mutex
	bridges, namespaces []string
}

// requireNetns is requirePrivileged plus the tools a lab needs.
func requireNetns(t testing.TB) {
	t.Helper()
	requirePrivileged(t)
	for _, tool := range []string{"ip", "nsenter", "iptables", "ss"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("BATON_REQUIRE_PRIVILEGED") == "1" {
				t.Fatalf("network namespace tests need %s (make deps installs it): %v", tool, err)
			}
			t.Skipf("needs %s; set BATON_REQUIRE_PRIVILEGED=1 to make this a failure", tool)
		}
	}
}

// newNetLab claims a free /24 and creates its bridge.
func newNetLab(t testing.TB) *netLab {
	t.Helper()
	requireNetns(t)
	l := &netLab{t: t}
	used := usedPrefixes(t)
	for _, s := range rand.Perm(512) {
		prefix := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18 + byte(s/256), byte(s % 256), 0}), 24)
		if overlapsAny(prefix, used) {
			continue
		}
		bridge := fmt.Sprintf("btn%03x", s)
		// Creating the bridge is the claim: it fails if another run has it.
		if _, err := ipOut("link", "add", bridge, "type", "bridge"); err != nil {
			continue
		}
		l.subnet, l.bridge, l.prefix = s, bridge, prefix
		l.bridgeIP = l.addr(1).String()
		break
	}
	if l.bridge == "" {
		t.Fatal("no free /24 in 198.18.0.0/15 for a test network (leftover btn* bridges? `ip link show type bridge`)")
	}
	labLinks.Lock()
	labLinks.bridges = append(labLinks.bridges, l.bridge)
	labLinks.Unlock()
	t.Cleanup(l.remove)
	l.must("link", "set", l.bridge, "type", "bridge", "forward_delay", "0")
	disableIPv6(t, "", l.bridge)
	l.must("addr", "add", l.bridgeIP+"/24", "dev", l.bridge)
	l.must("link", "set", l.bridge, "up")
	return l
}

// addr is the lab's address with host part i.
func (l *netLab) addr(i int) netip.Addr {
	b := l.prefix.Addr().As4()
	b[3] = byte(i)
	return netip.AddrFrom4(b)
}

// addHost creates a namespace for name, joined to the bridge.
func (l *netLab) addHost(name string) *netHost {
	l.t.Helper()
	l.mu.Lock()
	i := len(l.hosts) + 1
	h := &netHost{name: name, ns: fmt.Sprintf("baton-%d-%03x-%d", os.Getpid(), l.subnet, i),
		port: fmt.Sprintf("%sv%d", l.bridge, i), ip: l.addr(10 + i).String()}
	l.hosts = append(l.hosts, h)
	l.mu.Unlock()
	if i > 200 {
		l.t.Fatal("a lab has room for 200 hosts")
	}
	labLinks.Lock()
	labLinks.namespaces = append(labLinks.namespaces, h.ns)
	labLinks.Unlock()
	l.must("netns", "add", h.ns)
	l.must("link", "add", h.port, "type", "veth", "peer", "name", "eth0", "netns", h.ns)
	disableIPv6(l.t, "", h.port)
	disableIPv6(l.t, h.ns, "all")
	l.must("link", "set", h.port, "master", l.bridge)
	l.must("link", "set", h.port, "up")
	l.must("-n", h.ns, "addr", "add", h.ip+"/24", "dev", "eth0")
	l.must("-n", h.ns, "link", "set", "eth0", "up")
	l.must("-n", h.ns, "link", "set", "lo", "up")
	return h
}

// host returns the lab's host called name, or nil (also for a nil lab).
func (l *netLab) host(name string) *netHost {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range l.hosts {
		if h.name == name {
			return h
		}
	}
	return nil
}

// cut partitions h from the lab (and so from NATS and the server).
func (l *netLab) cut(h *netHost, how cutMode) {
	l.t.Helper()
	if h.cut != "" {
		l.t.Fatalf("%s is already cut off (%s)", h.name, h.cut)
	}
	switch how {
	case cutLink:
		l.must("link", "set", h.port, "down")
	case cutDrop:
		for _, rule := range dropRules {
			l.mustIn(h, append([]string{"iptables", "-I"}, rule...)...)
		}
	default:
		l.t.Fatalf("unknown cut %q", how)
	}
	h.cut = how
}

// dropRules drop everything on a host's eth0 (its loopback keeps working).
var dropRules = [][]string{{"INPUT", "-i", "eth0", "-j", "DROP"}, {"OUTPUT", "-o", "eth0", "-j", "DROP"}}

// heal undoes cut.
func (l *netLab) heal(h *netHost) {
	l.t.Helper()
	switch h.cut {
	case cutLink:
		l.must("link", "set", h.port, "up")
	case cutDrop:
		for _, rule := range dropRules {
			l.mustIn(h, append([]string{"iptables", "-D"}, rule...)...)
		}
	default:
		l.t.Fatalf("%s is not cut off", h.name)
	}
	h.cut = ""
}

// reboot gives h's network stack the clean slate a rebooted machine's has:
// every socket in its namespace is destroyed (ss -K), with whatever unsent
// data the kernel still held for processes that are gone, and its neighbour
// cache is emptied. A fence that kills processes leaves those sockets
// behind, and a cut-off host's kernel keeps retrying them: healed, it would
// deliver what its dead agent sent during the partition. Call it once the
// host's processes are dead; a cut host stays cut.
func (l *netLab) reboot(h *netHost) {
	l.t.Helper()
	l.mustIn(h, "ss", "-K", "-a", "-n", "-t", "-u")
	l.must("-n", h.ns, "neigh", "flush", "all")
	if out, err := h.command("ss", "-H", "-a", "-n", "-t", "-u").CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "" {
		l.t.Fatalf("rebooting %s: sockets survive ss -K (needs CONFIG_INET_DIAG_DESTROY): %v\n%s", h.name, err, out)
	}
}

// command returns a command that runs argv inside h's network namespace
// only (nsenter: unlike `ip netns exec`, it leaves the mount namespace and
// so /sys/fs/cgroup alone, which the agent needs).
func (h *netHost) command(argv ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=/run/netns/" + h.ns, "--"}, argv...)...)
}

// netnsInode returns the inode of h's network namespace, to compare with
// /proc/PID/ns/net.
func (h *netHost) netnsInode() (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat("/run/netns/"+h.ns, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// remove deletes the lab's namespaces, links and bridge, and fails the test
// if any is left. Processes in the namespaces must be gone by then: their
// cleanups were registered later, so they ran first.
func (l *netLab) remove() {
	for _, h := range l.hosts {
		// Deleting one end of a veth pair deletes both; iptables rules
		// go with the namespace.
		if linkExists(h.port) {
			if out, err := ipOut("link", "del", h.port); err != nil {
				l.t.Errorf("removing %s: %v %s", h.port, err, out)
			}
		}
		if _, err := os.Stat("/run/netns/" + h.ns); err == nil {
			if out, err := ipOut("netns", "del", h.ns); err != nil {
				l.t.Errorf("removing namespace %s: %v %s", h.ns, err, out)
			}
		}
	}
	if out, err := ipOut("link", "del", l.bridge); err != nil {
		l.t.Errorf("removing bridge %s: %v %s", l.bridge, err, out)
	}
	if left := l.leftovers(); len(left) > 0 {
		l.t.Errorf("test network not fully removed: %s", strings.Join(left, ", "))
	}
}

// leftovers lists what of the lab still exists.
func (l *netLab) leftovers() []string {
	var out []string
	if linkExists(l.bridge) {
		out = append(out, "bridge "+l.bridge)
	}
	for _, h := range l.hosts {
		if linkExists(h.port) {
			out = append(out, "link "+h.port)
		}
		if _, err := os.Stat("/run/netns/" + h.ns); err == nil {
			out = append(out, "namespace "+h.ns)
		}
	}
	return out
}

// leakedNetworks lists the bridges and namespaces this process created that
// still exist; TestMain's leak check reports them.
func leakedNetworks() []string {
	labLinks.Lock()
	defer labLinks.Unlock()
	var out []string
	for _, b := range labLinks.bridges {
		if linkExists(b) {
			out = append(out, "bridge "+b)
		}
	}
	for _, ns := range labLinks.namespaces {
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			out = append(out, "namespace "+ns)
		}
	}
	return out
}

func (l *netLab) must(args ...string) {
	l.t.Helper()
	if out, err := ipOut(args...); err != nil {
		l.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (l *netLab) mustIn(h *netHost, argv ...string) {
	l.t.Helper()
	if out, err := h.command(argv...).CombinedOutput(); err != nil {
		l.t.Fatalf("in %s: %s: %v\n%s", h.ns, strings.Join(argv, " "), err, out)
	}
}

func ipOut(args ...string) (string, error) {
	out, err := exec.Command("ip", args...).CombinedOutput()
	return string(out), err
}

func linkExists(name string) bool {
	_, err := ipOut("link", "show", "dev", name)
	return err == nil
}

// disableIPv6 keeps IPv6 (router solicitations, duplicate address
// detection) off the test network: only the lab's IPv4 traffic moves there.
// /proc/sys/net belongs to the network namespace of whoever opens it, hence
// the shell inside the namespace.
func disableIPv6(t testing.TB, ns, dev string) {
	t.Helper()
	knob := "/proc/sys/net/ipv6/conf/" + dev + "/disable_ipv6"
	if ns == "" {
		if err := os.WriteFile(knob, []byte("1"), 0o644); err != nil {
			t.Fatalf("disabling IPv6 on %s: %v", dev, err)
		}
		return
	}
	cmd := (&netHost{ns: ns}).command("sh", "-c", "echo 1 > "+knob)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
}

// usedPrefixes lists the IPv4 prefixes of this machine's routes, so a lab
// never shadows a network that exists.
func usedPrefixes(t testing.TB) []netip.Prefix {
	t.Helper()
	out, err := ipOut("-4", "route", "show", "table", "all")
	if err != nil {
		t.Fatalf("ip -4 route show table all: %v\n%s", err, out)
	}
	var used []netip.Prefix
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		dst := f[0]
		if dst == "local" || dst == "broadcast" || dst == "unreachable" || dst == "blackhole" || dst == "prohibit" {
			if len(f) < 2 {
				continue
			}
			dst = f[1]
		}
		if dst == "default" {
			continue
		}
		if !strings.Contains(dst, "/") {
			dst += "/32"
		}
		if p, err := netip.ParsePrefix(dst); err == nil {
			used = append(used, p)
		}
	}
	return used
}

func overlapsAny(p netip.Prefix, used []netip.Prefix) bool {
	for _, u := range used {
		if p.Overlaps(u) {
			return true
		}
	}
	return false
}

// TestNetLabPartitionsAndCleansUp checks the lab itself: hosts reach the
// bridge's address and nothing beyond their subnet, each cut stops exactly
// the cut host's traffic and heal restores it, a reboot clears what a dead
// process's connection still held, and nothing is left after the test's
// cleanup.
func TestNetLabPartitionsAndCleansUp(t *testing.T) {
	requireNetns(t)
	var lab *netLab
	t.Run("lab", func(t *testing.T) {
		lab = newNetLab(t)
		h1, h2 := lab.addHost("h1"), lab.addHost("h2")
		ln, err := net.Listen("tcp", net.JoinHostPort(lab.bridgeIP, "0"))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		// connects tries a TCP connection from h to the listener with bash's
		// /dev/tcp, for at most seconds (a dropped SYN would wait minutes).
		connects := func(h *netHost, seconds string) bool {
			cmd := h.command("timeout", seconds, "bash", "-c", "exec 3<>/dev/tcp/"+strings.ReplaceAll(ln.Addr().String(), ":", "/"))
			return cmd.Run() == nil
		}
		reaches := func(h *netHost) bool { return connects(h, "10") }
		// A cut host cannot connect at all; a second tells it from a slow one.
		cutOff := func(h *netHost) bool { return !connects(h, "1") }
		for _, h := range []*netHost{h1, h2} {
			if !reaches(h) {
				t.Fatalf("%s cannot reach the bridge's %s", h.name, ln.Addr())
			}
			routes, err := ipOut("-n", h.ns, "-4", "route", "show", "table", "main")
			if err != nil || strings.TrimSpace(routes) != lab.prefix.String()+" dev eth0 proto kernel scope link src "+h.ip {
				t.Errorf("%s's routes = %q, %v; want only its subnet %s", h.name, routes, err, lab.prefix)
			}
			if v6, err := ipOut("-n", h.ns, "-6", "addr", "show", "dev", "eth0"); err != nil || strings.TrimSpace(v6) != "" {
				t.Errorf("%s has IPv6 on eth0: %q, %v", h.name, v6, err)
			}
		}
		for _, how := range []cutMode{cutLink, cutDrop} {
			lab.cut(h1, how)
			if !cutOff(h1) {
				t.Errorf("%s still reaches the bridge after a %s cut", h1.name, how)
			}
			if !reaches(h2) {
				t.Errorf("%s lost the bridge when %s was cut (%s)", h2.name, h1.name, how)
			}
			lab.heal(h1)
			if !reaches(h1) {
				t.Errorf("%s does not reach the bridge after the %s cut healed", h1.name, how)
			}
		}
		// A connection whose process died while its host was cut off
		// lives on in the host's kernel, retrying its unsent data, until
		// the host reboots.
		writer := h1.command("bash", "-c", "exec 3<>/dev/tcp/"+strings.ReplaceAll(ln.Addr().String(), ":", "/")+" && echo connected && read -r _ && echo stale >&3")
		stdin, err := writer.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := writer.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := writer.Start(); err != nil {
			t.Fatal(err)
		}
		if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "connected\n" {
			_ = writer.Process.Kill()
			_ = writer.Wait()
			t.Fatalf("%s did not connect to %s: %q, %v", h1.name, ln.Addr(), line, err)
		}
		lab.cut(h1, cutLink)
		_, _ = io.WriteString(stdin, "\n")
		if err := writer.Wait(); err != nil {
			t.Fatalf("the writer in %s: %v", h1.name, err)
		}
		if out, err := h1.command("ss", "-H", "-a", "-n", "-t").CombinedOutput(); err != nil || strings.TrimSpace(string(out)) == "" {
			t.Errorf("after its writer died, %s's kernel has no socket left to retry (%v): %q; the reboot check below proves nothing", h1.name, err, out)
		}
		lab.reboot(h1) // fails the test if a socket survives
		lab.heal(h1)
		if !reaches(h1) {
			t.Errorf("%s does not reach the bridge after its reboot", h1.name)
		}
		lab.cut(h2, cutDrop) // left cut: cleanup must cope
		if n := len(lab.leftovers()); n != 5 {
			t.Errorf("the leak check sees %d of the lab's 5 parts (bridge, 2 ports, 2 namespaces): %v", n, lab.leftovers())
		}
	})
	if lab == nil {
		t.Fatal("the lab was not created")
	}
	if left := lab.leftovers(); len(left) > 0 {
		t.Errorf("after the test's cleanup these remain: %v", left)
	}
	for _, l := range leakedNetworks() {
		if strings.Contains(l, lab.bridge) || strings.Contains(l, fmt.Sprintf("-%03x-", lab.subnet)) {
			t.Errorf("leak check reports %s", l)
		}
	}
}

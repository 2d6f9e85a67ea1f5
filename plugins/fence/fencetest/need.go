package fencetest

import (
	"os"
	"os/exec"
	"testing"
)

// RequirePrivilegedEnv is the environment variable CI sets to turn missing
// tools or privileges into failures instead of skips.
const RequirePrivilegedEnv = "BATON_REQUIRE_PRIVILEGED"

// Unavailable skips the test with why, or fails it when
// BATON_REQUIRE_PRIVILEGED=1: a missing capability in CI is a failure,
// never a silent skip.
func Unavailable(t testing.TB, why string) {
	t.Helper()
	if os.Getenv(RequirePrivilegedEnv) == "1" {
		t.Fatalf("%s (%s=1, so this is a failure; run 'make deps' as root)", why, RequirePrivilegedEnv)
	}
	t.Skipf("%s (skipping; set %s=1 to make this a failure)", why, RequirePrivilegedEnv)
}

// NeedTool returns the path of the named program, looking in PATH and then
// /usr/sbin and /sbin (fence agents live there), or calls Unavailable.
func NeedTool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
		p := dir + "/" + name
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	Unavailable(t, name+" not found")
	return ""
}

// NeedRoot calls Unavailable unless the test runs as root.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "test needs root")
	}
}

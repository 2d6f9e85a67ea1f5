package fencetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// BuildDriver builds the driver main package pkg (an import path or a
// ./relative directory, resolved from the test's working directory) into a
// temporary directory and returns the binary's path, for fence.Open.
func BuildDriver(t testing.TB, pkg string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go" // where MACHINE.md's machines keep it
		if g := os.Getenv("GOROOT"); g != "" {
			goBin = filepath.Join(g, "bin", "go")
		}
	}
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command(goBin, "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("fencetest: go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

package fencetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// BuildDriver builds the driver main package pkg (an import path or a
// ./relative directory, resolved from the test's working directory) into a
// temporary directory and returns the binary's path, for fence.Open.
func BuildDriver(t testing.TB, pkg string) string {
	t.Helper()
	dir := t.TempDir()
	if err := BuildDrivers(dir, pkg); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, filepath.Base(pkg))
}

// BuildDrivers builds the driver main packages pkgs into dir, each binary
// named after its package's directory (as `go build -o dir/` names them).
func BuildDrivers(dir string, pkgs ...string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go" // where MACHINE.md's machines keep it
		if g := os.Getenv("GOROOT"); g != "" {
			goBin = filepath.Join(g, "bin", "go")
		}
	}
	cmd := exec.Command(goBin, append([]string{"build", "-o", dir + string(filepath.Separator)}, pkgs...)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("fencetest: go build %s: %v\n%s", strings.Join(pkgs, " "), err, b)
	}
	return nil
}

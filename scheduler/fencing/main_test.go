package fencing

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/batonhq/baton/plugins/fence/fencetest"
)

// driverPkgs are the drivers' main packages.
var driverPkgs = []string{
	"github.com/batonhq/baton/plugins/fence/drivers/fenceagent/cmd/baton-fence-agent",
	"github.com/batonhq/baton/plugins/fence/drivers/ipmi/cmd/baton-fence-ipmi",
	"github.com/batonhq/baton/plugins/fence/drivers/process/cmd/baton-fence-process",
}

// driverDir receives the driver binaries, built on first use by
// driversBuilt as `make build` builds them next to bin/baton.
var (
	driverDir   string
	driverBuild sync.Once
	driverErr   error
)

// driversBuilt builds the drivers once and returns their directory.
func driversBuilt(t *testing.T) string {
	t.Helper()
	driverBuild.Do(func() { driverErr = fencetest.BuildDrivers(driverDir, driverPkgs...) })
	if driverErr != nil {
		t.Fatal(driverErr)
	}
	return driverDir
}

// TestMain fails the run if a test leaves a child process (a plugin, a
// fence agent, a node's process) behind.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "baton-fencing-drivers-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	driverDir = dir
	code := fencetest.RunMain(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

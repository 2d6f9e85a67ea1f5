package fencing

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ErrDriverNotFound: a device's driver binary is not where Baton looks.
var ErrDriverNotFound = errors.New("fencing: fence driver not found")

// driverBinaryPrefix starts the file name of every driver binary.
const driverBinaryPrefix = "baton-fence-"

// binaryAliases are driver names whose binary is not baton-fence-NAME: the
// fence-agent driver's Metadata calls it "fence-agent", its binary is
// baton-fence-agent.
var binaryAliases = map[string]string{"fence-agent": "baton-fence-agent"}

// BinaryName is the file name of the driver binary for a driver name:
// baton-fence-NAME (baton-fence-agent for fence-agent).
func BinaryName(driver string) string {
	if b, ok := binaryAliases[driver]; ok {
		return b
	}
	return driverBinaryPrefix + driver
}

// ExecutableDir is the directory of the running executable, where `make
// build` puts the drivers next to bin/baton; "" if it cannot be found.
func ExecutableDir() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	if resolved, err := filepath.EvalSymlinks(exe); err == nil {
		exe = resolved
	}
	return filepath.Dir(exe)
}

// FindDriver returns the binary for driver: driver itself when it is an
// absolute path, else BinaryName(driver) in the first of dirs that has it,
// else in $PATH. The error names every place it looked.
func FindDriver(driver string, dirs []string) (string, error) {
	if filepath.IsAbs(driver) {
		if err := executable(driver); err != nil {
			return "", fmt.Errorf("driver %s: %w: %v; give the path of a driver binary built with plugins/fence", driver, ErrDriverNotFound, err)
		}
		return driver, nil
	}
	bin := BinaryName(driver)
	var looked []string
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, bin)
		if executable(p) == nil {
			return p, nil
		}
		looked = append(looked, dir)
	}
	if p, err := exec.LookPath(bin); err == nil {
		return filepath.Abs(p)
	}
	looked = append(looked, "$PATH ("+os.Getenv("PATH")+")")
	return "", fmt.Errorf("driver %q: %w: no executable %s in %s; run 'make build' (it puts the drivers next to bin/baton), install %s next to baton or in $PATH, or give the driver's absolute path",
		driver, ErrDriverNotFound, bin, strings.Join(looked, ", "), bin)
}

// executable returns nil if path is a regular file someone may execute.
func executable(path string) error {
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return err
	case !fi.Mode().IsRegular():
		return errors.New("not a regular file")
	case fi.Mode()&0o111 == 0:
		return errors.New("not executable")
	}
	return nil
}

// Package deptest checks import direction: a test in a pure package (a
// decision core) calls Forbid so that it fails the day the package reaches,
// even indirectly, for messaging, plugins, the network, processes or logging.
package deptest

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// Rule forbids one import path, or with a trailing "/" a whole tree of them.
type Rule struct {
	Import string
	Why    string
}

// Pure is what no decision core may depend on: the adapters do that I/O.
var Pure = []Rule{
	{"github.com/nats-io/", "messaging belongs to the adapters"},
	{"github.com/hashicorp/go-plugin", "plugins belong to the adapters"},
	{"google.golang.org/grpc", "RPC belongs to the adapters"},
	{"github.com/checkpoint-restore/", "CRIU belongs to migrate/criu"},
	{"net", "network I/O belongs to the adapters"},
	{"net/http", "network I/O belongs to the adapters"},
	{"os/exec", "running processes belongs to the adapters"},
	{"log", "decisions do not log; the caller logs what they return"},
	{"log/slog", "decisions do not log; the caller logs what they return"},
}

// Forbid fails t if the package in the test's directory depends, directly
// or not, on anything the rules forbid. The package itself never matches.
func Forbid(t *testing.T, rules ...Rule) {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list -deps: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("the import check runs `go list -deps`: %v (is the go command on PATH?)", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 3 {
		t.Fatalf("go list -deps gave an unexpected answer: %q", deps)
	}
	self := deps[len(deps)-1] // go list prints the package itself last
	for _, dep := range deps[:len(deps)-1] {
		for _, r := range rules {
			tree, isTree := strings.CutSuffix(r.Import, "/")
			if dep == r.Import || (isTree && (dep == tree || strings.HasPrefix(dep, r.Import))) {
				t.Errorf("%s depends on %s: %s (go list -deps %s shows the path)", self, dep, r.Why, self)
			}
		}
	}
}

package placement

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportDirection keeps placement pure: it must not depend, even
// indirectly, on messaging, plugins, the network, processes, logging, the
// clock or the operating system. The package formats its messages with
// strconv rather than fmt for this reason: fmt brings in os, and os brings
// in time.
func TestImportDirection(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the import check runs `go list`, but the go command is not on PATH: %v", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("go list -deps: %v\n%s", err, msg)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 3 || deps[len(deps)-1] != "github.com/batonhq/baton/placement" {
		t.Fatalf("go list -deps gave an unexpected answer: %q", deps)
	}
	forbiddenPrefixes := []string{
		"github.com/nats-io/",
		"github.com/hashicorp/go-plugin",
	}
	forbidden := map[string]string{
		"net/http": "network I/O belongs to the adapters",
		"os/exec":  "running processes belongs to the adapters",
		"os":       "placement does no I/O",
		"log":      "placement does not log; the caller logs the Decision",
		"log/slog": "placement does not log; the caller logs the Decision",
		"time":     "placement reads no clock; pass time in if a decision ever needs it",
	}
	for _, dep := range deps {
		if why, ok := forbidden[dep]; ok {
			t.Errorf("placement depends on %s: %s (go list -deps ./placement shows the path)", dep, why)
		}
		for _, p := range forbiddenPrefixes {
			if strings.HasPrefix(dep, p) {
				t.Errorf("placement depends on %s: decisions must not reach for messaging or plugins", dep)
			}
		}
		if strings.HasPrefix(dep, "github.com/batonhq/baton/") && dep != "github.com/batonhq/baton/placement" {
			t.Errorf("placement depends on %s: it is a leaf; other packages depend on it, not the reverse", dep)
		}
	}
}

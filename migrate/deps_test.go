package migrate

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportDirection keeps the migration state machine pure: no messaging,
// plugins, network, processes, logging or CRIU. The adapters (migrate/criu,
// the agents) carry its actions out.
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
	if len(deps) < 3 || deps[len(deps)-1] != "github.com/batonhq/baton/migrate" {
		t.Fatalf("go list -deps gave an unexpected answer: %q", deps)
	}
	forbiddenPrefixes := map[string]string{
		"github.com/nats-io/":                "messaging belongs to the agents",
		"github.com/hashicorp/go-plugin":     "plugins belong to the adapters",
		"github.com/checkpoint-restore/":     "CRIU belongs to migrate/criu",
		"google.golang.org/grpc":             "RPC belongs to the adapters",
		"github.com/batonhq/baton/nodeagent": "the agent depends on migrate, not the reverse",
	}
	forbidden := map[string]string{
		"net":      "network I/O belongs to the adapters",
		"net/http": "network I/O belongs to the adapters",
		"os/exec":  "running processes belongs to the adapters",
		"log":      "the machine does not log; the caller logs the Report",
		"log/slog": "the machine does not log; the caller logs the Report",
	}
	for _, dep := range deps {
		if why, ok := forbidden[dep]; ok {
			t.Errorf("migrate depends on %s: %s (go list -deps ./migrate shows the path)", dep, why)
		}
		for p, why := range forbiddenPrefixes {
			if strings.HasPrefix(dep, p) {
				t.Errorf("migrate depends on %s: %s", dep, why)
			}
		}
	}
}

package failover

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportDirection keeps failover and its subpackages pure: no messaging, plugins, network,
// processes or logging, even indirectly. It uses time only for its types:
// every instant is passed in.
func TestImportDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 3 {
		t.Fatalf("go list -deps gave an unexpected answer: %q", deps)
	}
	for _, dep := range deps {
		for _, bad := range []string{"github.com/nats-io/", "github.com/hashicorp/go-plugin", "net/http", "os/exec", "log/slog", "net"} {
			if dep == bad || (strings.HasSuffix(bad, "/") && strings.HasPrefix(dep, bad)) || (bad != "net" && strings.HasPrefix(dep, bad+"/")) {
				t.Errorf("failover depends on %s: decisions must not do I/O (go list -deps ./failover shows the path)", dep)
			}
		}
	}
}

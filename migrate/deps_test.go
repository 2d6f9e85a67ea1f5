package migrate

import (
	"testing"

	"github.com/batonhq/baton/internal/deptest"
)

// TestImportDirection keeps the migration state machine pure: no messaging,
// plugins, network, processes, logging or CRIU. The adapters (migrate/criu,
// the agents) carry its actions out.
func TestImportDirection(t *testing.T) {
	deptest.Forbid(t, append(deptest.Pure,
		deptest.Rule{Import: "github.com/batonhq/baton/nodeagent/", Why: "the agent depends on migrate, not the reverse"})...)
}

package placement

import (
	"testing"

	"github.com/batonhq/baton/internal/deptest"
)

// TestImportDirection keeps placement pure: it must not depend, even
// indirectly, on messaging, plugins, the network, processes, logging, the
// clock or the operating system. The package formats its messages with
// strconv rather than fmt for this reason: fmt brings in os, and os brings
// in time.
func TestImportDirection(t *testing.T) {
	deptest.Forbid(t, append(deptest.Pure,
		deptest.Rule{Import: "os", Why: "placement does no I/O"},
		deptest.Rule{Import: "time", Why: "placement reads no clock; pass time in if a decision ever needs it"},
		deptest.Rule{Import: "github.com/batonhq/baton/", Why: "placement is a leaf; other packages depend on it, not the reverse"},
	)...)
}

package rebalance

import (
	"testing"

	"github.com/batonhq/baton/internal/deptest"
)

// TestImportDirection keeps the rebalancer pure: it may use placement, and
// nothing that does I/O; the scheduler carries its moves out.
func TestImportDirection(t *testing.T) {
	deptest.Forbid(t, append(deptest.Pure,
		deptest.Rule{Import: "github.com/batonhq/baton/scheduler/", Why: "the scheduler depends on rebalance, not the reverse"},
		deptest.Rule{Import: "github.com/batonhq/baton/migrate/", Why: "the rebalancer predicts frozen time itself; the scheduler runs migrations"},
	)...)
}

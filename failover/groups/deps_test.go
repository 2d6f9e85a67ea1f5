package groups

import (
	"testing"

	"github.com/batonhq/baton/internal/deptest"
)

// TestImportDirection keeps groups pure: no messaging, plugins, network,
// processes or logging, even indirectly. It uses time only for its types:
// every instant is passed in.
func TestImportDirection(t *testing.T) { deptest.Forbid(t, deptest.Pure...) }

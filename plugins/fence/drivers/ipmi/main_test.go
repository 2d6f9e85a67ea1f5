package ipmi_test

import (
	"testing"

	"github.com/batonhq/baton/plugins/fence/fencetest"
)

// TestMain fails the run if a test leaves a child process behind.
func TestMain(m *testing.M) { fencetest.Main(m) }

package deptest

import "testing"

// TestForbidCatchesADependency runs Forbid on this package, which imports
// os/exec, through a recording T: the rule must fire.
func TestForbidCatchesADependency(t *testing.T) {
	rec := &testing.T{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Forbid(rec, Rule{"os/exec", "test"})
	}()
	<-done
	if !rec.Failed() {
		t.Fatal("Forbid did not flag os/exec, which this package imports")
	}
	Forbid(t, Rule{"github.com/nats-io/", "test"}) // and stays quiet when nothing matches
}

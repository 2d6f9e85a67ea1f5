package main

import (
	"bytes"
	"strings"
	"testing"
)

// The HA flags are documented in baton agent --help and checked on use.
func TestAgentHAFlags(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"agent", "--help"}, &out, &out); code != 0 {
		t.Fatalf("baton agent --help exited %d", code)
	}
	for _, want := range []string{"-alive-interval", "(default 250ms)", "-probe-addr", `(default "127.0.0.1:0")`, "-self-fence-after", "(default 6s)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("baton agent --help does not show %q:\n%s", want, out.String())
		}
	}

	out.Reset()
	args := []string{"agent", "--name", "n1", "--data-dir", t.TempDir(), "--alive-interval", "-1s"}
	if code := run(args, &out, &out); code != 1 || !strings.Contains(out.String(), "alive interval") {
		t.Errorf("baton %v: exit %d, output:\n%s\nwant exit 1 and a word on the alive interval", args, code, out.String())
	}
}

package wire

import (
	"errors"
	"testing"
)

func TestDecodeMigrationCommands(t *testing.T) {
	mig := `"migration":{"id":"m-1","workload":{"id":"w-1","name":"a","command":["x"],"resources":{"cpu_millis":0,"memory_mb":0}},"source":"n1","target":"n2","mode":"stop-copy"`
	tests := []struct {
		name string
		msg  string
		ok   bool
	}{
		{"prepare", `{"v":1,"op":"migrate-prepare",` + mig + `}}`, true},
		{"prepare without migration", `{"v":1,"op":"migrate-prepare"}`, false},
		{"dump needs a page server", `{"v":1,"op":"migrate-dump",` + mig + `}}`, false},
		{"dump", `{"v":1,"op":"migrate-dump",` + mig + `,"page_server":"127.0.0.1:9"}}`, true},
		{"commit needs a role", `{"v":1,"op":"migrate-commit",` + mig + `}}`, false},
		{"abort as target", `{"v":1,"op":"migrate-abort",` + mig + `,"role":"target","kill_target":true}}`, true},
		{"bad target node", `{"v":1,"op":"migrate-restore","migration":{"id":"m","workload":{"id":"w"},"source":"n1","target":"a.b"}}`, false},
		{"chunk", `{"v":1,"op":"migrate-receive","chunk":{"migration":"m","kind":"image","path":"core-1.img","data":"AAE=","last":true}}`, true},
		{"chunk escaping its dir", `{"v":1,"op":"migrate-receive","chunk":{"migration":"m","kind":"workdir","path":"../etc/passwd"}}`, false},
		{"chunk absolute", `{"v":1,"op":"migrate-receive","chunk":{"migration":"m","kind":"workdir","path":"/etc/passwd"}}`, false},
		{"chunk unclean", `{"v":1,"op":"migrate-receive","chunk":{"migration":"m","kind":"workdir","path":"a/../../b"}}`, false},
		{"workdir's own dir", `{"v":1,"op":"migrate-receive","chunk":{"migration":"m","kind":"workdir","path":".","mode":1023,"dir":true,"last":true}}`, true},
		{"dir chunk among images", `{"v":1,"op":"migrate-receive","chunk":{"migration":"m","kind":"image","path":"a","dir":true}}`, false},
		{"dir chunk with data", `{"v":1,"op":"migrate-receive","chunk":{"migration":"m","kind":"workdir","path":"a","data":"AAE=","dir":true}}`, false},
		{"chunk unknown kind", `{"v":1,"op":"migrate-receive","chunk":{"migration":"m","kind":"etc","path":"a"}}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeCommand([]byte(tc.msg))
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrMalformed)) {
				t.Errorf("DecodeCommand = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

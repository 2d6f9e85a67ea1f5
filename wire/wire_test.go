package wire_test

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/wire"
)

var sentAt = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)

func intPtr(i int) *int { return &i }

// fullHeartbeat uses every field, so a field the encoder or decoder drops
// shows in the round trip.
func fullHeartbeat() wire.Heartbeat {
	return wire.Heartbeat{
		V: wire.Version, Node: "node-1_a", Seq: 42, SentAt: sentAt, IntervalMS: 1000,
		Labels:   map[string]string{"zone": "eu-1", "arch": "amd64"},
		Capacity: wire.Capacity{CPUs: 8, CPUMillis: 8000, MemoryMB: 32768, DiskMB: 500_000},
		Headroom: wire.Headroom{CPUMillis: 6500, MemoryMB: 20000, DiskMB: 400_000, CPUPercent: 18.75, Load1: 1.5, Load5: 1.25, Load15: 0.5},
		Workloads: []wire.WorkloadStatus{
			{ID: "w-1", Name: "web", State: wire.StateRunning, HostPID: 1234, StartedAt: sentAt.Add(-time.Hour), Resources: wire.Resources{CPUMillis: 500, MemoryMB: 256}},
			{ID: "w-2", Name: "job", State: wire.StateFailed, ExitCode: intPtr(2), Error: "exit status 2"},
		},
	}
}

func startCommand() wire.Command {
	return wire.Command{V: wire.Version, Op: wire.OpStart, Workload: &wire.WorkloadSpec{
		ID: "w-1", Name: "web", Command: []string{"/usr/bin/python3", "-m", "http.server"},
		Env: map[string]string{"PORT": "8080"}, Workdir: "/srv", Resources: wire.Resources{CPUMillis: 500, MemoryMB: 256},
	}}
}

// decodeCase is one input to a decoder: wantErr "" means it must be accepted
// and decode to want; otherwise the error must wrap ErrMalformed and contain
// wantErr.
type decodeCase[T any] struct {
	name    string
	data    string
	want    T
	wantErr string
}

func runDecodeCases[T any](t *testing.T, decode func([]byte) (T, error), cases []decodeCase[T]) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decode([]byte(tc.data))
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("accepted %q as %+v, want an error containing %q", tc.data, got, tc.wantErr)
				}
				if !errors.Is(err, wire.ErrMalformed) {
					t.Errorf("error %v does not wrap ErrMalformed", err)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %q does not contain %q", err, tc.wantErr)
				}
				var zero T
				if !reflect.DeepEqual(got, zero) {
					t.Errorf("on error the decoder returned %+v, want the zero value", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("rejected %s: %v", tc.data, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("decoded\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

func TestDecodeHeartbeat(t *testing.T) {
	runDecodeCases(t, wire.DecodeHeartbeat, []decodeCase[wire.Heartbeat]{
		{name: "full", data: string(wire.Encode(fullHeartbeat())), want: fullHeartbeat()},
		{name: "minimal", data: `{"v":1,"node":"n1"}`, want: wire.Heartbeat{V: 1, Node: "n1"}},
		{name: "unknown fields are ignored", data: `{"v":1,"node":"n1","future":true}`, want: wire.Heartbeat{V: 1, Node: "n1"}},
		{name: "63-character name", data: `{"v":1,"node":"` + strings.Repeat("a", 63) + `"}`, want: wire.Heartbeat{V: 1, Node: strings.Repeat("a", 63)}},
		{name: "newer version", data: `{"v":2,"node":"n1"}`, wantErr: "protocol version 2, want 1"},
		{name: "no version", data: `{"node":"n1"}`, wantErr: "protocol version 0, want 1"},
		{name: "version as a string", data: `{"v":"1","node":"n1"}`, wantErr: "cannot unmarshal string"},
		{name: "foreign JSON", data: `{"hello":1}`, wantErr: "protocol version 0"},
		{name: "JSON array", data: `[1,2]`, wantErr: "cannot unmarshal array"},
		{name: "JSON null", data: `null`, wantErr: "protocol version 0"},
		{name: "garbage bytes", data: "\x00\xff\xfe garbage", wantErr: "invalid character"},
		{name: "empty", data: ``, wantErr: "unexpected end of JSON input"},
		{name: "truncated", data: `{"v":1,"node":"n1"`, wantErr: "unexpected end of JSON input"},
		{name: "no node name", data: `{"v":1}`, wantErr: `node name "" is invalid`},
		{name: "node name with a dot", data: `{"v":1,"node":"n1.example"}`, wantErr: `node name "n1.example" is invalid`},
		{name: "node name is a wildcard", data: `{"v":1,"node":"*"}`, wantErr: `node name "*" is invalid`},
		{name: "node name is a full wildcard", data: `{"v":1,"node":">"}`, wantErr: `node name ">" is invalid`},
		{name: "node name with a space", data: `{"v":1,"node":"n 1"}`, wantErr: `node name "n 1" is invalid`},
		{name: "node name with a newline", data: `{"v":1,"node":"n1\n"}`, wantErr: `is invalid`},
		{name: "node name starting with a dash", data: `{"v":1,"node":"-n1"}`, wantErr: `node name "-n1" is invalid`},
		{name: "64-character name", data: `{"v":1,"node":"` + strings.Repeat("a", 64) + `"}`, wantErr: "is invalid"},
		{name: "workload without id", data: `{"v":1,"node":"n1","workloads":[{"name":"web","state":"running"}]}`, wantErr: "workload without id"},
	})
}

func TestDecodeLeave(t *testing.T) {
	runDecodeCases(t, wire.DecodeLeave, []decodeCase[wire.Leave]{
		{name: "valid", data: `{"v":1,"node":"n1"}`, want: wire.Leave{V: 1, Node: "n1"}},
		{name: "newer version", data: `{"v":2,"node":"n1"}`, wantErr: "protocol version 2, want 1"},
		{name: "foreign JSON", data: `{"hello":1}`, wantErr: "protocol version 0"},
		{name: "garbage bytes", data: "\x89PNG\r\n", wantErr: "invalid character"},
		{name: "no node name", data: `{"v":1}`, wantErr: `node name "" is invalid`},
		{name: "node name with a dot", data: `{"v":1,"node":"a.b"}`, wantErr: `node name "a.b" is invalid`},
		{name: "node name is a wildcard", data: `{"v":1,"node":"n*"}`, wantErr: `node name "n*" is invalid`},
		{name: "node name with a space", data: `{"v":1,"node":" n1"}`, wantErr: `node name " n1" is invalid`},
	})
}

func TestDecodeCommand(t *testing.T) {
	runDecodeCases(t, wire.DecodeCommand, []decodeCase[wire.Command]{
		{name: "start", data: string(wire.Encode(startCommand())), want: startCommand()},
		{name: "stop", data: `{"v":1,"op":"stop","id":"w-1"}`, want: wire.Command{V: 1, Op: wire.OpStop, ID: "w-1"}},
		{name: "newer version", data: `{"v":2,"op":"stop","id":"w-1"}`, wantErr: "protocol version 2, want 1"},
		{name: "foreign JSON", data: `{"hello":1}`, wantErr: "protocol version 0"},
		{name: "garbage bytes", data: "\xde\xad\xbe\xef", wantErr: "invalid character"},
		{name: "start without workload", data: `{"v":1,"op":"start"}`, wantErr: "needs a workload with an id and a command"},
		{name: "start with null workload", data: `{"v":1,"op":"start","workload":null}`, wantErr: "needs a workload"},
		{name: "start without command", data: `{"v":1,"op":"start","workload":{"id":"w-1","name":"web"}}`, wantErr: "needs a workload with an id and a command"},
		{name: "start with empty command", data: `{"v":1,"op":"start","workload":{"id":"w-1","command":[]}}`, wantErr: "and a command"},
		{name: "start without id", data: `{"v":1,"op":"start","workload":{"command":["/bin/true"]}}`, wantErr: "needs a workload with an id"},
		{name: "stop without id", data: `{"v":1,"op":"stop"}`, wantErr: "command stop: wire: malformed message: needs an id"},
		{name: "stop with workload but no id", data: `{"v":1,"op":"stop","workload":{"id":"w-1","command":["/bin/true"]}}`, wantErr: "needs an id"},
		{name: "unknown op", data: `{"v":1,"op":"restart","id":"w-1"}`, wantErr: `unknown op "restart"`},
		{name: "no op", data: `{"v":1,"id":"w-1"}`, wantErr: `unknown op ""`},
		{name: "op in capitals", data: `{"v":1,"op":"STOP","id":"w-1"}`, wantErr: `unknown op "STOP"`},
	})
}

func TestDecodeCommandReply(t *testing.T) {
	runDecodeCases(t, wire.DecodeCommandReply, []decodeCase[wire.CommandReply]{
		{
			name: "status",
			data: `{"v":1,"status":{"id":"w-1","name":"web","state":"running","host_pid":77,"started_at":"2026-03-01T12:00:00.123456789Z","resources":{"cpu_millis":500,"memory_mb":256}}}`,
			want: wire.CommandReply{V: 1, Status: &wire.WorkloadStatus{
				ID: "w-1", Name: "web", State: wire.StateRunning, HostPID: 77, StartedAt: sentAt, Resources: wire.Resources{CPUMillis: 500, MemoryMB: 256},
			}},
		},
		{
			name: "exited",
			data: `{"v":1,"status":{"id":"w-1","state":"failed","exit_code":137,"resources":{"cpu_millis":0,"memory_mb":0}}}`,
			want: wire.CommandReply{V: 1, Status: &wire.WorkloadStatus{ID: "w-1", State: wire.StateFailed, ExitCode: intPtr(137)}},
		},
		{name: "error", data: `{"v":1,"error":"exec: \"/x\": no such file"}`, want: wire.CommandReply{V: 1, Error: `exec: "/x": no such file`}},
		{name: "newer version", data: `{"v":2}`, wantErr: "protocol version 2, want 1"},
		{name: "foreign JSON", data: `{"hello":1}`, wantErr: "protocol version 0"},
		{name: "garbage bytes", data: "\x1f\x8b\x08", wantErr: "invalid character"},
		{name: "bad time", data: `{"v":1,"status":{"id":"w-1","started_at":"yesterday"}}`, wantErr: "cannot parse"},
	})
}

// TestRoundTrip encodes each message and decodes it back to the same value.
func TestRoundTrip(t *testing.T) {
	cases := []struct {
		name   string
		msg    any
		decode func([]byte) (any, error)
	}{
		{"heartbeat", fullHeartbeat(), func(b []byte) (any, error) { return wire.DecodeHeartbeat(b) }},
		{"heartbeat without workloads", wire.Heartbeat{V: wire.Version, Node: "n1", SentAt: sentAt, Workloads: []wire.WorkloadStatus{}},
			func(b []byte) (any, error) { return wire.DecodeHeartbeat(b) }},
		{"leave", wire.Leave{V: wire.Version, Node: "n1"}, func(b []byte) (any, error) { return wire.DecodeLeave(b) }},
		{"start", startCommand(), func(b []byte) (any, error) { return wire.DecodeCommand(b) }},
		{"stop", wire.Command{V: wire.Version, Op: wire.OpStop, ID: "w-1"}, func(b []byte) (any, error) { return wire.DecodeCommand(b) }},
		{"reply with status", wire.CommandReply{V: wire.Version, Status: &fullHeartbeat().Workloads[1]},
			func(b []byte) (any, error) { return wire.DecodeCommandReply(b) }},
		{"reply with error", wire.CommandReply{V: wire.Version, Error: "refused"}, func(b []byte) (any, error) { return wire.DecodeCommandReply(b) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := wire.Encode(tc.msg)
			got, err := tc.decode(data)
			if err != nil {
				t.Fatalf("decoding %s: %v", data, err)
			}
			if !reflect.DeepEqual(got, tc.msg) {
				t.Errorf("round trip\n%+v\nwant\n%+v", got, tc.msg)
			}
		})
	}
}

func TestSubjects(t *testing.T) {
	cases := []struct {
		name, got, want string
	}{
		{"heartbeat", wire.SubjectHeartbeat("n1"), "baton.v1.node.n1.heartbeat"},
		{"leave", wire.SubjectLeave("n1"), "baton.v1.node.n1.leave"},
		{"command", wire.SubjectCommand("n1"), "baton.v1.node.n1.cmd"},
		{"heartbeat wildcard", wire.HeartbeatWildcard, "baton.v1.node.*.heartbeat"},
		{"leave wildcard", wire.LeaveWildcard, "baton.v1.node.*.leave"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("subject %q, want %q", tc.got, tc.want)
			}
		})
	}
}

func TestEncodePanicsOnUnencodable(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Errorf("Encode of a channel did not panic")
		}
	}()
	wire.Encode(make(chan int))
}

// ---- fuzz ----------------------------------------------------------------------

// fuzzDecoder checks one decoder: it never panics; it fails only with
// ErrMalformed and the zero value; what it accepts re-encodes to bytes it
// accepts again, decoding to the same value, and from then on the encoding
// is a fixed point.
func fuzzDecoder[T any](t *testing.T, decode func([]byte) (T, error), data []byte) {
	m1, err := decode(data)
	if err != nil {
		if !errors.Is(err, wire.ErrMalformed) {
			t.Fatalf("error %v does not wrap ErrMalformed", err)
		}
		var zero T
		if !reflect.DeepEqual(m1, zero) {
			t.Fatalf("on error the decoder returned %+v", m1)
		}
		return
	}
	enc1 := wire.Encode(m1)
	m2, err := decode(enc1)
	if err != nil {
		t.Fatalf("the decoder rejects the encoding of a message it accepted: %v\n%s", err, enc1)
	}
	// Values that JSON cannot tell apart (an empty and a nil map under
	// omitempty, one instant in two time zones under omitzero) may differ
	// after the first trip, so the first comparison is by encoding...
	enc2 := wire.Encode(m2)
	if !bytes.Equal(enc1, enc2) {
		t.Fatalf("re-encoding changed the message:\n%s\n%s", enc1, enc2)
	}
	// ...and after it the value itself is stable.
	m3, err := decode(enc2)
	if err != nil {
		t.Fatalf("second decode: %v", err)
	}
	if !reflect.DeepEqual(m2, m3) {
		t.Fatalf("round trip changed the value:\n%+v\n%+v", m2, m3)
	}
}

func addSeeds(f *testing.F, seeds ...string) {
	for _, s := range append(seeds, ``, `null`, `{}`, `[]`, `{"hello":1}`, `{"v":2}`, "\x00\xff", `{"v":1`) {
		f.Add([]byte(s))
	}
}

func FuzzDecodeHeartbeat(f *testing.F) {
	addSeeds(f,
		string(wire.Encode(fullHeartbeat())),
		`{"v":1,"node":"n1"}`,
		`{"v":1,"node":"n1","labels":{},"workloads":[]}`,
		`{"v":1,"node":"n1.x"}`,
		`{"v":1,"node":"n1","sent_at":"2026-03-01T12:00:00+05:30"}`,
		`{"v":1,"node":"n1","workloads":[{"id":"w","started_at":"0001-01-01T01:00:00+01:00"}]}`,
		`{"v":1,"node":"n1","workloads":[{"name":"no id"}]}`,
		`{"v":1,"node":"n1","headroom":{"cpu_percent":-0,"load1":1e308}}`,
		`{"V":1,"NODE":"n1","Seq":18446744073709551615}`,
	)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecoder(t, wire.DecodeHeartbeat, data) })
}

func FuzzDecodeLeave(f *testing.F) {
	addSeeds(f, `{"v":1,"node":"n1"}`, `{"v":1,"node":"*"}`, `{"v":1,"node":"n1","v":2}`)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecoder(t, wire.DecodeLeave, data) })
}

func FuzzDecodeCommand(f *testing.F) {
	addSeeds(f,
		string(wire.Encode(startCommand())),
		`{"v":1,"op":"stop","id":"w-1"}`,
		`{"v":1,"op":"start","workload":{"id":"w-1","command":[""],"env":{}}}`,
		`{"v":1,"op":"start"}`,
		`{"v":1,"op":"stop"}`,
		`{"v":1,"op":"reboot","id":"w-1"}`,
	)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecoder(t, wire.DecodeCommand, data) })
}

func FuzzDecodeCommandReply(f *testing.F) {
	addSeeds(f,
		`{"v":1,"status":{"id":"w-1","state":"running","host_pid":77,"started_at":"2026-03-01T12:00:00Z"}}`,
		`{"v":1,"error":"refused"}`,
		`{"v":1,"status":{"id":"w-1","exit_code":-1,"started_at":"9999-12-31T23:59:59-23:59"}}`,
		`{"v":1,"status":null}`,
	)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecoder(t, wire.DecodeCommandReply, data) })
}

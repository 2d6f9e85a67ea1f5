package wire_test

import (
	"testing"

	"github.com/batonhq/baton/wire"
)

func TestDecodeAlive(t *testing.T) {
	runDecodeCases(t, wire.DecodeAlive, []decodeCase[wire.Alive]{
		{name: "ok", data: `{"v":1,"node":"n1","seq":7,"interval_ms":250}`, want: wire.Alive{V: 1, Node: "n1", Seq: 7, IntervalMS: 250}},
		{name: "bad node", data: `{"v":1,"node":"n.1"}`, wantErr: "node name"},
		{name: "negative interval", data: `{"v":1,"node":"n1","interval_ms":-1}`, wantErr: "negative interval"},
		{name: "other version", data: `{"v":2,"node":"n1"}`, wantErr: "protocol version 2"},
	})
}

func TestDecodeBeacon(t *testing.T) {
	runDecodeCases(t, wire.DecodeBeacon, []decodeCase[wire.Beacon]{
		{name: "ok", data: `{"v":1,"leader":"s1","epoch":9,"quorate":true,"sent_at":"2026-03-01T12:00:00.123456789Z","interval_ms":250}`,
			want: wire.Beacon{V: 1, Leader: "s1", Epoch: 9, Quorate: true, SentAt: sentAt, IntervalMS: 250}},
		{name: "no leader", data: `{"v":1,"interval_ms":250}`, wantErr: "needs a leader"},
		{name: "no interval", data: `{"v":1,"leader":"s1"}`, wantErr: "positive interval"},
	})
}

func TestDecodeGroupStart(t *testing.T) {
	ok := startCommand()
	ok.Workload.Group = &wire.GroupRef{Group: "db", Resource: "pg"}
	ok.Workload.Monitor = &wire.MonitorSpec{Command: []string{"true"}, IntervalMS: 500, TimeoutMS: 200}
	runDecodeCases(t, wire.DecodeCommand, []decodeCase[wire.Command]{
		{name: "group resource", data: string(wire.Encode(ok)), want: ok},
		{name: "monitor without command", data: `{"v":1,"op":"start","workload":{"id":"w","command":["x"],"monitor":{"interval_ms":1,"timeout_ms":1}}}`, wantErr: "monitor needs a command"},
		{name: "monitor without interval", data: `{"v":1,"op":"start","workload":{"id":"w","command":["x"],"monitor":{"command":["true"],"timeout_ms":1}}}`, wantErr: "positive interval"},
		{name: "self-fence", data: `{"v":1,"epoch":3,"op":"self-fence"}`, want: wire.Command{V: 1, Epoch: 3, Op: wire.OpSelfFence}},
	})
}

func FuzzDecodeAlive(f *testing.F) {
	addSeeds(f, `{"v":1,"node":"n1","seq":1,"interval_ms":250}`, `{"v":1,"node":"n1","interval_ms":-5}`)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecoder(t, wire.DecodeAlive, data) })
}

func FuzzDecodeBeacon(f *testing.F) {
	addSeeds(f, `{"v":1,"leader":"s1","epoch":9,"quorate":true,"sent_at":"2026-03-01T12:00:00Z","interval_ms":250}`, `{"v":1,"leader":"","interval_ms":0}`)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecoder(t, wire.DecodeBeacon, data) })
}

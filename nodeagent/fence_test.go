package nodeagent

import (
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/wire"
)

func TestFenceVerdict(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	quorate := wire.Beacon{Leader: "s1", Epoch: 4, Quorate: true}
	minority := wire.Beacon{Leader: "s1", Epoch: 4, Quorate: false}
	const after = 6 * time.Second

	newLeader := wire.Beacon{Leader: "s2", Epoch: 9, Quorate: false}
	newLeaderQuorate := wire.Beacon{Leader: "s2", Epoch: 9, Quorate: true}

	// event is something that happens to the agent at a time: a beacon, a
	// self-fence command (order: its epoch) or a start of a group resource
	// (start: its epoch).
	type event struct {
		at     time.Duration
		beacon *wire.Beacon
		order  uint64
		start  uint64
	}
	tests := []struct {
		name    string
		events  []event
		now     time.Duration
		fenced  bool
		wantWhy string
	}{
		{"fresh agent within the grace", nil, 5 * time.Second, false, ""},
		{"fresh agent, never a beacon, grace over", nil, 6 * time.Second, true, "since the agent started for 6s"},
		{"quorate beacons keep it running", []event{{at: 5 * time.Second, beacon: &quorate}}, 10 * time.Second, false, ""},
		{"the first beacon's silence counts from the beacon", []event{{at: 5 * time.Second, beacon: &quorate}}, 11 * time.Second, true, "no quorate beacon from a leader for 6s"},
		{"just under the limit", []event{{at: time.Second, beacon: &quorate}}, 7*time.Second - time.Millisecond, false, ""},
		{"a handover's gap of 3.5 s is survived", []event{{at: time.Second, beacon: &quorate}, {at: 4500 * time.Millisecond, beacon: &quorate}}, 9 * time.Second, false, ""},
		{"a beacon without quorum fences at once", []event{{at: time.Second, beacon: &quorate}, {at: 2 * time.Second, beacon: &minority}}, 2 * time.Second, true, "no quorum"},
		{"the self-fence command fences at once", []event{{at: time.Second, beacon: &quorate}, {at: 2 * time.Second, order: 4}}, 2 * time.Second, true, "ordered it"},
		{"an order also holds within the start grace", []event{{at: 0, order: 4}}, time.Second, true, "ordered it"},
		{"a quorate beacon lifts an order", []event{{at: 2 * time.Second, order: 4}, {at: 3 * time.Second, beacon: &quorate}}, 3 * time.Second, false, ""},
		{"a quorate beacon lifts the silence", []event{{at: 7 * time.Second, beacon: &quorate}}, 7 * time.Second, false, ""},
		{"a beacon without quorum does not count as heard", []event{{at: time.Second, beacon: &quorate}, {at: 4 * time.Second, beacon: &minority}}, 4 * time.Second, true, "no quorum"},
		{"a new leader not yet quorate does not fence at once", []event{{at: time.Second, beacon: &quorate}, {at: 3 * time.Second, beacon: &newLeader}}, 3 * time.Second, false, ""},
		{"a new leader that stays without quorum fences by silence", []event{{at: time.Second, beacon: &quorate}, {at: 3 * time.Second, beacon: &newLeader}, {at: 6 * time.Second, beacon: &newLeader}}, 7 * time.Second, true, "no quorate beacon from a leader for 6s"},
		{"a new leader that was quorate and lost it fences at once", []event{{at: time.Second, beacon: &newLeaderQuorate}, {at: 2 * time.Second, beacon: &newLeader}}, 2 * time.Second, true, "s2 (epoch 9) reports that its partition has no quorum"},
		{"an agent that never heard a quorate leader waits for silence", []event{{at: time.Second, beacon: &minority}}, 5 * time.Second, false, ""},
		{"a group start is a quorate word", []event{{at: 7 * time.Second, start: 4}}, 8 * time.Second, false, ""},
		{"a group start of a new leader lifts an order", []event{{at: time.Second, order: 4}, {at: 2 * time.Second, start: 9}}, 2 * time.Second, false, ""},
		{"a group start does not lift its own leader's order", []event{{at: time.Second, beacon: &quorate}, {at: 2 * time.Second, beacon: &minority}, {at: 3 * time.Second, start: 4}}, 3 * time.Second, true, "no quorum"},
		{"nor its self-fence command", []event{{at: time.Second, order: 4}, {at: 2 * time.Second, start: 4}}, 2 * time.Second, true, "ordered it"},
		{"after a new leader's start, its beacon without quorum fences", []event{{at: time.Second, start: 9}, {at: 2 * time.Second, beacon: &newLeader}}, 2 * time.Second, true, "no quorum"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := fenceState{started: t0}
			for _, e := range tc.events {
				switch {
				case e.beacon != nil:
					s.beacon(*e.beacon, at(e.at))
				case e.start != 0:
					s.groupStart(e.start, at(e.at))
				default:
					s.command(e.order)
				}
			}
			fenced, why := fenceVerdict(s, at(tc.now), after)
			if fenced != tc.fenced || !strings.Contains(why, tc.wantWhy) || (!fenced && why != "") {
				t.Errorf("fenceVerdict = %v, %q; want %v and a reason with %q", fenced, why, tc.fenced, tc.wantWhy)
			}
		})
	}
}

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

	// event is something that happens to the agent at a time; a nil beacon
	// with epoch > 0 is a self-fence command.
	type event struct {
		at     time.Duration
		beacon *wire.Beacon
		order  uint64
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
		{"a beacon without quorum does not count as heard", []event{{at: 4 * time.Second, beacon: &minority}}, 4 * time.Second, true, "no quorum"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := fenceState{started: t0}
			for _, e := range tc.events {
				if e.beacon != nil {
					s.beacon(*e.beacon, at(e.at))
				} else {
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

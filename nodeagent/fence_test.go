package nodeagent

import (
	"context"
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

func TestLiftWait(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	quorate := wire.Beacon{Leader: "s1", Epoch: 4, Quorate: true, IntervalMS: 250}
	minority := wire.Beacon{Leader: "s1", Epoch: 4, Quorate: false, IntervalMS: 250}
	tests := []struct {
		name    string
		beacons []wire.Beacon
		order   bool // then a self-fence command of epoch 4
		want    time.Duration
	}{
		{"not fenced", []wire.Beacon{quorate}, false, 0},
		{"held back by a beacon without quorum: four beacon intervals", []wire.Beacon{quorate, minority}, false, time.Second},
		{"held back by the self-fence command", []wire.Beacon{quorate}, true, time.Second},
		{"an order lifted by a quorate beacon", []wire.Beacon{quorate, minority, quorate}, false, 0},
		{"fenced by silence only: the start itself lifts that", nil, false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := fenceState{started: t0}
			for _, b := range tc.beacons {
				s.beacon(b, t0)
			}
			if tc.order {
				s.command(4)
			}
			s.groupStart(4, t0.Add(time.Hour))
			if got := liftWait(s); got != tc.want {
				t.Errorf("liftWait = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestGroupStartWaitsForTheBeaconThatLiftsItsLeadersOrder: a leader that
// regains quorum starts groups at once; its beacon saying so may come just
// after the start. The start waits for it, and only for liftWait.
func TestGroupStartWaitsForTheBeaconThatLiftsItsLeadersOrder(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	quorate := wire.Beacon{V: wire.Version, Leader: "s1", Epoch: 4, Quorate: true, IntervalMS: 250}
	minority := quorate
	minority.Quorate = false
	fencedFence := func(clock Clock) *selfFence {
		f := newSelfFence(6 * time.Second)
		f.state.started = clock.Now()
		f.beacon(quorate, clock.Now())
		f.beacon(minority, clock.Now())
		if fenced, why := f.peek(clock.Now()); !fenced || !strings.Contains(why, "no quorum") {
			t.Fatalf("set-up: fenced %v (%s), want fenced for no quorum", fenced, why)
		}
		return f
	}
	start := func(f *selfFence, clock Clock) <-chan struct{} {
		done := make(chan struct{})
		go func() { defer close(done); f.groupStart(context.Background(), clock, 4) }()
		return done
	}
	returned := func(done <-chan struct{}) bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}

	t.Run("a quorate beacon after the start lets it through", func(t *testing.T) {
		clock := NewManualClock(t0)
		f := fencedFence(clock)
		done := start(f, clock)
		// The start must be waiting (its ticker made) before the beacon
		// comes, or this would not test the wait.
		for deadline := time.Now().Add(10 * time.Second); clock.Tickers() == 0; time.Sleep(time.Millisecond) {
			if returned(done) {
				t.Fatal("the start returned without waiting for a quorate beacon")
			}
			if time.Now().After(deadline) {
				t.Fatal("the start never waits on its clock")
			}
		}
		f.beacon(quorate, clock.Now())
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the start still waits after the quorate beacon")
		}
		if fenced, why := f.peek(clock.Now()); fenced {
			t.Errorf("fenced after the quorate beacon: %s", why)
		}
	})

	t.Run("without one it is refused after liftWait", func(t *testing.T) {
		clock := NewManualClock(t0)
		f := fencedFence(clock)
		done := start(f, clock)
		if returned(done) {
			t.Fatal("the start did not wait for a beacon")
		}
		// Its ticker may not exist yet: advance the clock until it fired.
		for deadline := time.Now().Add(10 * time.Second); !returned(done); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the start still waits after %v of its clock", clock.Now().Sub(t0))
			}
			clock.Advance(10 * time.Millisecond)
		}
		if waited := clock.Now().Sub(t0); waited < liftWaitBeacons*250*time.Millisecond {
			t.Errorf("the start waited %v of its clock, want liftWait, 4 beacon intervals of 250ms", waited)
		}
		if fenced, _ := f.peek(clock.Now()); !fenced {
			t.Error("not fenced after liftWait without a quorate beacon")
		}
	})

	t.Run("no order, no wait", func(t *testing.T) {
		clock := NewManualClock(t0)
		f := newSelfFence(6 * time.Second)
		f.state.started = clock.Now()
		f.groupStart(context.Background(), clock, 4) // returns without the clock moving
	})
}

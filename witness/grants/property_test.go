package grants

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// The property: with the client rule of witness.Holder — a holder believes a
// grant until its own clock reads the claim's send time + 3/4 TTL, stops
// believing before it sends a release, and never claims again under a name
// it has released — no two holders ever believe they hold the lease at the
// same instant. The simulation below runs several
// holders against one witness with clocks that run at different rates,
// random network delays and losses, renewals with changing TTLs, releases,
// pauses, and witness crashes that lose everything but the persisted
// records (with the wall clock jumping across the restart). A holder that
// releases starts a new life under a new name: a release can arrive after a
// later claim (the network reorders them), and must then free nothing that
// the holder still believes in.

// beliefRule returns, on the holder's clock, until when it believes a grant
// answered to a claim sent at send and received at recv.
type beliefRule func(send, recv, ttl time.Duration) time.Duration

func holderRule(send, _, ttl time.Duration) time.Duration { return send + ttl*3/4 }

func TestNoTwoHoldersEverBelieveAtOnce(t *testing.T) {
	for seed := uint64(1); seed <= 400; seed++ {
		if v := simulate(seed, holderRule); v != "" {
			t.Fatalf("seed %d: %s", seed, v)
		}
	}
}

// TestTheSimulationCatchesABrokenRule shows the property test has teeth: a
// client that believes a full TTL from when the answer arrives (ignoring
// delays and clock rates) is caught.
func TestTheSimulationCatchesABrokenRule(t *testing.T) {
	naive := func(_, recv, ttl time.Duration) time.Duration { return recv + ttl }
	for seed := uint64(1); seed <= 400; seed++ {
		if simulate(seed, naive) != "" {
			return
		}
	}
	t.Fatal("400 runs with a client that believes recv+TTL found no overlap; the simulation cannot see violations")
}

type simEvent struct {
	at     time.Duration // real time
	seq    int
	kind   string // claim-send, claim-arrive, answer-arrive, release-send, release-arrive, crash, restart
	holder int
	send   time.Duration // real send time of the claim
	ttl    time.Duration
	life   int // the holder's life the claim was sent in
	answer Answer
}

type eventQueue []simEvent

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(simEvent)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

type simClock struct {
	rate   float64
	offset time.Duration
}

func (c simClock) local(real time.Duration) time.Duration {
	return time.Duration(float64(real)*c.rate) + c.offset
}
func (c simClock) real(local time.Duration) time.Duration {
	return time.Duration(float64(local-c.offset) / c.rate)
}

type interval struct {
	holder     string
	start, end time.Duration
}

// simulate runs one random history and returns a description of the first
// overlap of two holders' beliefs, or "".
func simulate(seed uint64, rule beliefRule) string {
	rng := rand.New(rand.NewPCG(seed, seed*7919))
	const holders, horizon = 3, 40 * time.Second
	ttls := []time.Duration{200 * time.Millisecond, 600 * time.Millisecond, 1500 * time.Millisecond}
	rate := func() float64 { return 0.9 + 0.2*rng.Float64() } // ±10%
	delay := func() time.Duration { return time.Duration(rng.Int64N(int64(300 * time.Millisecond))) }

	clocks := make([]simClock, holders)
	for i := range clocks {
		clocks[i] = simClock{rate: rate(), offset: time.Duration(rng.Int64N(int64(time.Hour)))}
	}
	wclock := simClock{rate: rate(), offset: time.Duration(rng.Int64N(int64(time.Hour)))}
	witnessNow := func(real time.Duration) time.Time { return t0.Add(wclock.local(real)) }

	q := &eventQueue{}
	seq := 0
	push := func(e simEvent) { seq++; e.seq = seq; heap.Push(q, e) }
	for h := range holders {
		for at := time.Duration(0); at < horizon; {
			switch r := rng.IntN(20); {
			case r == 0:
				push(simEvent{at: at, kind: "release-send", holder: h})
			default:
				push(simEvent{at: at, kind: "claim-send", holder: h, ttl: ttls[rng.IntN(len(ttls))]})
			}
			// Mostly a renewal cadence near ttl/3; sometimes a long pause.
			gap := time.Duration(rng.Int64N(int64(500 * time.Millisecond)))
			if rng.IntN(15) == 0 {
				gap += time.Duration(rng.Int64N(int64(3 * time.Second)))
			}
			at += gap + time.Millisecond
		}
	}
	for at := time.Duration(rng.Int64N(int64(5 * time.Second))); at < horizon; at += time.Duration(3+rng.IntN(8)) * time.Second {
		push(simEvent{at: at, kind: "crash"})
		push(simEvent{at: at + time.Duration(rng.Int64N(int64(2*time.Second))), kind: "restart"})
	}

	table, up := New(), true
	var persisted []Durable
	lives := make([]int, holders) // a holder's name is "holder.life"
	name := func(h, life int) string { return fmt.Sprintf("%d.%d", h, life) }
	var beliefs []interval
	lost := func() bool { return rng.IntN(10) == 0 }

	for q.Len() > 0 {
		e := heap.Pop(q).(simEvent)
		switch e.kind {
		case "claim-send":
			if !lost() {
				push(simEvent{at: e.at + delay(), kind: "claim-arrive", holder: e.holder, send: e.at, ttl: e.ttl, life: lives[e.holder]})
			}
		case "claim-arrive":
			if !up {
				continue
			}
			now := witnessNow(e.at)
			if len(table.Expire(now)) > 0 {
				persisted = table.Durable(now)
			}
			a, err := table.Claim("c", name(e.holder, e.life), e.ttl, now)
			if err != nil {
				return err.Error()
			}
			if a.DurableChanged {
				persisted = table.Durable(now) // before the answer leaves
			}
			if !lost() {
				e.kind, e.at, e.answer = "answer-arrive", e.at+delay(), a
				push(e)
			}
		case "answer-arrive":
			if !e.answer.Granted || e.life != lives[e.holder] {
				continue // refused, or answers a claim of a life that has ended
			}
			c := clocks[e.holder]
			until := c.real(rule(c.local(e.send), c.local(e.at), e.ttl))
			if until > e.at {
				beliefs = append(beliefs, interval{name(e.holder, e.life), e.at, until})
			}
		case "release-send":
			// The holder stops believing before the release leaves.
			for i := range beliefs {
				if b := &beliefs[i]; b.holder == name(e.holder, lives[e.holder]) && b.end > e.at {
					b.end = max(b.start, e.at)
				}
			}
			if !lost() {
				push(simEvent{at: e.at + delay(), kind: "release-arrive", holder: e.holder, life: lives[e.holder]})
			}
			lives[e.holder]++
		case "release-arrive":
			if !up {
				continue
			}
			now := witnessNow(e.at)
			if ok, _ := table.Release("c", name(e.holder, e.life), now); ok {
				persisted = table.Durable(now)
			}
		case "crash":
			up, table = false, nil
		case "restart":
			if up {
				continue
			}
			// The wall clock may have jumped while the witness was down.
			wclock.offset += time.Duration(rng.Int64N(int64(20*time.Second))) - 10*time.Second
			var err error
			if table, err = Restore(persisted, witnessNow(e.at)); err != nil {
				return err.Error()
			}
			up = true
		}
	}
	for i, a := range beliefs {
		for _, b := range beliefs[i+1:] {
			if a.holder != b.holder && a.start < b.end && b.start < a.end {
				return fmt.Sprintf("holders %s and %s both believed they held the lease: [%s, %s) and [%s, %s)",
					a.holder, b.holder, a.start, a.end, b.start, b.end)
			}
		}
	}
	if len(beliefs) == 0 {
		return "no holder ever believed it held the lease: the simulation tests nothing"
	}
	return ""
}

package lease

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

func TestMustStepDown(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ttl := 4 * time.Second
	tests := []struct {
		after time.Duration
		want  bool
	}{{0, false}, {2 * time.Second, false}, {2999 * time.Millisecond, false}, {3 * time.Second, true}, {10 * time.Second, true}}
	for _, tc := range tests {
		t.Run(tc.after.String(), func(t *testing.T) {
			if got := mustStepDown(t0, t0.Add(tc.after), ttl); got != tc.want {
				t.Errorf("mustStepDown after %v of a %v lease = %v, want %v", tc.after, ttl, got, tc.want)
			}
		})
	}
}

func startNATS(t *testing.T) string {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s.ClientURL()
}

// timeline records, per holder, the intervals in which it believed it led.
type timeline struct {
	mu     sync.Mutex
	spans  map[string][][2]time.Time
	epochs []uint64
}

func (tl *timeline) observer(holder string) func(State) {
	return func(s State) {
		tl.mu.Lock()
		defer tl.mu.Unlock()
		now := time.Now()
		sp := tl.spans[holder]
		if s.Leader {
			tl.spans[holder] = append(sp, [2]time.Time{now})
			tl.epochs = append(tl.epochs, s.Epoch)
		} else if len(sp) > 0 && sp[len(sp)-1][1].IsZero() {
			sp[len(sp)-1][1] = now
		}
	}
}

func (tl *timeline) leaders() []string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return tl.leadersLocked()
}

func (tl *timeline) leadersLocked() []string {
	var out []string
	for h, sp := range tl.spans {
		if len(sp) > 0 && sp[len(sp)-1][1].IsZero() {
			out = append(out, h)
		}
	}
	return out
}

// checkNoOverlap fails if two holders believed they led at the same time, and
// if epochs did not grow.
func (tl *timeline) checkNoOverlap(t *testing.T) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	type span struct {
		h          string
		start, end time.Time
	}
	var all []span
	for h, sp := range tl.spans {
		for _, s := range sp {
			end := s[1]
			if end.IsZero() {
				end = time.Now()
			}
			all = append(all, span{h, s[0], end})
		}
	}
	for i := range all {
		for j := range all {
			if i != j && all[i].h != all[j].h && all[i].start.Before(all[j].end) && all[j].start.Before(all[i].end) {
				t.Errorf("%s and %s both led between %v and %v", all[i].h, all[j].h, all[j].start, all[i].end)
			}
		}
	}
	for i := 1; i < len(tl.epochs); i++ {
		if tl.epochs[i] <= tl.epochs[i-1] {
			t.Errorf("epochs did not grow: %v", tl.epochs)
		}
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting until %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestOneLeaderAndHandover(t *testing.T) {
	url := startNATS(t)
	// Long enough that a handover by resignation (about a tick) and one by
	// expiry (a TTL) stay apart on a loaded machine.
	ttl := 2 * time.Second
	tl := &timeline{spans: map[string][][2]time.Time{}}
	type member struct {
		nc     *nats.Conn
		cancel context.CancelFunc
		done   chan struct{}
	}
	members := map[string]*member{}
	for i := range 3 {
		h := fmt.Sprintf("s%d", i)
		nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		kv, err := Open(context.Background(), nc, ttl, 1)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		m := &member{nc: nc, cancel: cancel, done: make(chan struct{})}
		members[h] = m
		l := New(kv, Config{Holder: h, TTL: ttl})
		go func() { defer close(m.done); _ = l.Run(ctx, tl.observer(h)) }()
		t.Cleanup(func() { cancel(); <-m.done })
	}
	waitFor(t, 5*time.Second, "one leader", func() bool { return len(tl.leaders()) == 1 })
	time.Sleep(ttl + ttl/2) // renewals keep the same leader
	if l := tl.leaders(); len(l) != 1 {
		t.Fatalf("leaders = %v, want exactly one", l)
	}
	first := tl.leaders()[0]

	// An orderly stop resigns: another server leads within about a tick
	// of the old leader letting go, not a TTL after its last renewal.
	members[first].cancel()
	<-members[first].done
	waitFor(t, 5*time.Second, "a new leader", func() bool { l := tl.leaders(); return len(l) == 1 && l[0] != first })
	tl.mu.Lock()
	fs := tl.spans[first]
	let := fs[len(fs)-1][1]
	ns := tl.spans[tl.leadersLocked()[0]]
	took := ns[len(ns)-1][0].Sub(let)
	tl.mu.Unlock()
	if took > ttl {
		t.Errorf("handover after resignation took %v from the old leader letting go, want under the TTL %v (an expiry would take that long)", took, ttl)
	}

	// A leader cut off from NATS steps down; another takes over only after.
	second := tl.leaders()[0]
	members[second].nc.Close()
	waitFor(t, 5*time.Second, "a third leader", func() bool { l := tl.leaders(); return len(l) == 1 && l[0] != second })
	tl.checkNoOverlap(t)
}

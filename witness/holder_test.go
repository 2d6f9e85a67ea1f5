package witness

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// changes records a Holder's OnChange calls with the (fake) time of each.
type changes struct {
	mu  sync.Mutex
	got []change
}

type change struct {
	granted bool
	at      time.Duration // since the bubble's start
}

func (c *changes) record(start time.Time) func(bool) {
	return func(g bool) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.got = append(c.got, change{g, time.Since(start)})
	}
}

func (c *changes) list() []change {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]change(nil), c.got...)
}

func newTestHolder(t *testing.T, w Witness, name string, ttl time.Duration, onChange func(bool)) *Holder {
	t.Helper()
	h, err := NewHolder(HolderConfig{Witness: w, Cluster: "c", Name: name, TTL: ttl, OnChange: onChange})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// run starts h.Run and returns a function that stops it and waits.
func run(t *testing.T, h *Holder) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run of %s: %v", h.ID(), err)
		}
	}
}

func TestOneHoldsTheOtherWaitsUntilRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		w := NewMemory(nil)
		var ca, cb changes
		a := newTestHolder(t, w, "a", 3*time.Second, ca.record(start))
		b := newTestHolder(t, w, "b", 3*time.Second, cb.record(start))
		stopA := run(t, a)
		synctest.Wait()
		stopB := run(t, b)
		defer stopB()
		synctest.Wait()
		if !a.Granted() || b.Granted() {
			t.Fatalf("after both claimed: a granted %v, b granted %v; want only a", a.Granted(), b.Granted())
		}

		time.Sleep(20 * time.Second) // a renews all along
		synctest.Wait()
		if !a.Granted() || b.Granted() {
			t.Fatalf("20 s later: a granted %v, b granted %v; want only a", a.Granted(), b.Granted())
		}
		if g := w.Grants(); len(g) != 1 || g[0].Holder != a.ID() {
			t.Fatalf("witness grants = %+v, want one to %s", g, a.ID())
		}

		stopA() // releases
		if a.Granted() {
			t.Fatal("a still believes after Run returned")
		}
		time.Sleep(time.Second) // b asks again every TTL/3
		synctest.Wait()
		if !b.Granted() {
			t.Fatalf("b not granted 1 s after a released; witness grants %+v", w.Grants())
		}
		want := []change{{true, 0}, {false, 20 * time.Second}}
		if got := ca.list(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
			t.Errorf("a's OnChange calls = %+v, want %+v", got, want)
		}
		if got := cb.list(); len(got) != 1 || !got[0].granted || got[0].at > 21*time.Second {
			t.Errorf("b's OnChange calls = %+v, want one true by 21 s", got)
		}
	})
}

func TestBeliefLapsesThreeQuartersTTLAfterTheLastGrantedSend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		w := NewMemory(nil)
		var ca changes
		a := newTestHolder(t, w, "a", 3*time.Second, ca.record(start))
		stop := run(t, a)
		defer stop()
		synctest.Wait()
		// Claims go out at 0, 1 s, 2 s; the witness is down from 2.5 s.
		time.Sleep(2500 * time.Millisecond)
		w.SetDown(true)
		// Last granted send at 2 s: believed until 2 s + 2.25 s.
		time.Sleep(4250*time.Millisecond - time.Since(start) - time.Nanosecond)
		if !a.Granted() {
			t.Fatalf("a lost the lease at %s, before 4.25 s", time.Since(start))
		}
		time.Sleep(time.Nanosecond)
		if a.Granted() {
			t.Fatalf("a still believes at %s", time.Since(start))
		}
		synctest.Wait()
		want := []change{{true, 0}, {false, 4250 * time.Millisecond}}
		if got := ca.list(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
			t.Errorf("OnChange calls = %+v, want %+v", got, want)
		}

		// The witness comes back: a claims it again (its grant has expired
		// there at 5 s, nobody else asked).
		time.Sleep(2 * time.Second)
		w.SetDown(false)
		time.Sleep(time.Second)
		synctest.Wait()
		if !a.Granted() {
			t.Errorf("a did not regain the lease after the witness came back; grants %+v", w.Grants())
		}
	})
}

func TestAHolderThatStopsRenewingLosesTheLeaseAfterTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		w := NewMemory(nil)
		// A holder that claimed once and then went silent (hung or cut off).
		if a, err := w.Claim(t.Context(), "c", "silent", 3*time.Second); err != nil || !a.Granted {
			t.Fatalf("claim: %+v, %v", a, err)
		}
		var cb changes
		b := newTestHolder(t, w, "b", 3*time.Second, cb.record(start))
		stop := run(t, b)
		defer stop()
		time.Sleep(3*time.Second - time.Nanosecond)
		synctest.Wait()
		if b.Granted() {
			t.Fatalf("b granted at %s, before the silent holder's TTL ran out", time.Since(start))
		}
		time.Sleep(time.Millisecond + time.Nanosecond)
		synctest.Wait()
		if !b.Granted() {
			t.Fatalf("b not granted right after the silent holder's TTL ran out; grants %+v", w.Grants())
		}
		if got := cb.list(); len(got) != 1 || got[0].at != 3*time.Second {
			t.Errorf("b's OnChange calls = %+v, want true at 3 s (it retries when the refusal said the lease expires)", got)
		}
	})
}

func TestARestartedWitnessKeepsTheLeaseWithItsHolder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := NewMemory(nil)
		a := newTestHolder(t, w, "a", 3*time.Second, nil)
		stopA := run(t, a)
		defer stopA()
		synctest.Wait()
		w.Restart()
		b := newTestHolder(t, w, "b", 3*time.Second, nil)
		stopB := run(t, b)
		defer stopB()
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if !a.Granted() || b.Granted() {
			t.Errorf("after a witness restart: a granted %v, b granted %v; want a to keep it", a.Granted(), b.Granted())
		}
	})
}

func TestRestartHonoursAGrantWhoseHolderIsGone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := NewMemory(nil)
		if a, err := w.Claim(t.Context(), "c", "gone", 3*time.Second); err != nil || !a.Granted {
			t.Fatalf("claim: %+v, %v", a, err)
		}
		time.Sleep(2 * time.Second)
		w.Restart() // 1 s was left; a restarted witness honours the full 3 s
		time.Sleep(3*time.Second - time.Millisecond)
		if a, _ := w.Claim(t.Context(), "c", "next", time.Second); a.Granted || a.Holder != "gone" || a.ExpiresIn != time.Millisecond {
			t.Errorf("claim 1 ms before the restored grant ends = %+v, want refused for 1 ms more", a)
		}
		time.Sleep(time.Millisecond)
		if a, _ := w.Claim(t.Context(), "c", "next", time.Second); !a.Granted {
			t.Errorf("claim when the restored grant ends = %+v, want granted", a)
		}
	})
}

func TestHolderConfigIsChecked(t *testing.T) {
	w := NewMemory(nil)
	tests := []struct {
		name string
		cfg  HolderConfig
	}{
		{"no witness", HolderConfig{Cluster: "c", Name: "a", TTL: time.Second}},
		{"no cluster", HolderConfig{Witness: w, Name: "a", TTL: time.Second}},
		{"no name", HolderConfig{Witness: w, Cluster: "c", TTL: time.Second}},
		{"ttl too short to renew", HolderConfig{Witness: w, Cluster: "c", Name: "a", TTL: 10 * time.Millisecond}},
		{"ttl not whole milliseconds", HolderConfig{Witness: w, Cluster: "c", Name: "a", TTL: time.Second + time.Microsecond}},
		{"ttl too long", HolderConfig{Witness: w, Cluster: "c", Name: "a", TTL: time.Hour}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewHolder(tc.cfg); err == nil {
				t.Errorf("NewHolder(%+v) accepted it", tc.cfg)
			}
		})
	}
}

func TestRunTwiceIsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newTestHolder(t, NewMemory(nil), "a", time.Second, nil)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := h.Run(ctx); err != nil {
			t.Fatal(err)
		}
		if err := h.Run(t.Context()); !errors.Is(err, ErrHolderUsed) {
			t.Errorf("second Run = %v, want ErrHolderUsed", err)
		}
	})
}

func TestHolderIDsAreUniquePerHolder(t *testing.T) {
	w := NewMemory(nil)
	a, b := newTestHolder(t, w, "s1", time.Second, nil), newTestHolder(t, w, "s1", time.Second, nil)
	if a.ID() == b.ID() || len(a.ID()) != len("s1-")+6 {
		t.Errorf("IDs %q and %q: want s1-XXXXXX, different", a.ID(), b.ID())
	}
}

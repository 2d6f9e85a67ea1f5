package integration

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/witness"
)

// The witness tests run `baton witness` as a real process and talk to it
// over HTTP with the real client; they need no privileges.

const witnessTTL = 2 * time.Second

// startWitness runs `baton witness` on addr with dataDir and waits until it
// answers.
func startWitness(t *testing.T, addr, dataDir string) *proc {
	t.Helper()
	p := startProc(t, "witness", "witness", "--listen", addr, "--data-dir", dataDir, "--log-level", "debug")
	c := witness.NewClient("http://"+addr, nil)
	eventually(t, 20*time.Second, "the witness at "+addr+" answers", func() error {
		select {
		case <-p.done:
			return fmt.Errorf("witness exited: %v\n%s", p.err, p.out.String())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := c.Status(ctx)
		return err
	})
	return p
}

// cuttable is a Witness whose link can be cut: while cut, every call fails
// as if the network were down (and a release is lost).
type cuttable struct {
	witness.Witness
	mu  sync.Mutex
	cut bool
}

func (c *cuttable) setCut(cut bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = cut
}

func (c *cuttable) isCut() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cut
}

func (c *cuttable) Claim(ctx context.Context, cluster, holder string, ttl time.Duration) (witness.Answer, error) {
	if c.isCut() {
		return witness.Answer{}, witness.ErrUnreachable
	}
	return c.Witness.Claim(ctx, cluster, holder, ttl)
}

func (c *cuttable) Release(ctx context.Context, cluster, holder string) error {
	if c.isCut() {
		return witness.ErrUnreachable
	}
	return c.Witness.Release(ctx, cluster, holder)
}

// watchedHolder is a running witness.Holder with the times its belief
// changed.
type watchedHolder struct {
	*witness.Holder
	mu      sync.Mutex
	changes []holderChange
	stop    func()
}

type holderChange struct {
	granted bool
	at      time.Time
}

func (h *watchedHolder) history() []holderChange {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]holderChange(nil), h.changes...)
}

func runHolder(t *testing.T, w witness.Witness, cluster, name string) *watchedHolder {
	t.Helper()
	wh := &watchedHolder{}
	h, err := witness.NewHolder(witness.HolderConfig{Witness: w, Cluster: cluster, Name: name, TTL: witnessTTL,
		OnChange: func(g bool) {
			wh.mu.Lock()
			defer wh.mu.Unlock()
			wh.changes = append(wh.changes, holderChange{g, time.Now()})
		}})
	if err != nil {
		t.Fatal(err)
	}
	wh.Holder = h
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	var once sync.Once
	wh.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("holder %s: %v", h.ID(), err)
			}
		})
	}
	t.Cleanup(wh.stop)
	return wh
}

func waitGranted(t *testing.T, h *watchedHolder, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, h.ID()+" holds the witness lease", func() error {
		if !h.Granted() {
			return errors.New("not granted")
		}
		return nil
	})
}

// TestWitnessGrantsOneHolderAndPassesItOnWhenTheHolderGoesSilent: two real
// holders of one cluster against a real witness. One holds, the other is
// refused; cut the holder off (it can neither renew nor release) and the
// other gets the lease only after the first has stopped believing, within
// about a TTL.
func TestWitnessGrantsOneHolderAndPassesItOnWhenTheHolderGoesSilent(t *testing.T) {
	addr := freeAddr(t)
	startWitness(t, addr, t.TempDir())
	client := witness.NewClient("http://"+addr, nil)
	cluster := "it" + uniq()

	linkA := &cuttable{Witness: client}
	a := runHolder(t, linkA, cluster, "a")
	waitGranted(t, a, 10*time.Second)
	b := runHolder(t, client, cluster, "b")

	// b is refused while a renews: the witness names a as the holder.
	ctx := t.Context()
	for range 3 {
		ans, err := client.Claim(ctx, cluster, b.ID(), witnessTTL)
		if err != nil || ans.Granted || ans.Holder != a.ID() || ans.ExpiresIn <= 0 || ans.ExpiresIn > witnessTTL {
			t.Fatalf("b's claim while a holds = %+v, %v; want refused, held by %s", ans, err, a.ID())
		}
		time.Sleep(witnessTTL / 3) // across a's renewals
	}
	if b.Granted() || !a.Granted() {
		t.Fatalf("a granted %v, b granted %v; want only a", a.Granted(), b.Granted())
	}
	st, err := client.Status(ctx)
	if err != nil || len(st.Grants) != 1 || st.Grants[0].Holder != a.ID() || st.Grants[0].TTLMS != witnessTTL.Milliseconds() {
		t.Fatalf("witness status = %+v, %v; want one grant to %s", st, err, a.ID())
	}

	linkA.setCut(true)
	cut := time.Now()
	waitGranted(t, b, witnessTTL+10*time.Second)
	aHist, bHist := a.history(), b.history()
	if len(aHist) != 2 || aHist[1].granted {
		t.Fatalf("a's belief changes = %+v, want granted then lost", aHist)
	}
	if len(bHist) != 1 || !bHist[0].granted {
		t.Fatalf("b's belief changes = %+v, want granted once", bHist)
	}
	aLost, bGot := aHist[1].at, bHist[0].at
	if !aLost.Before(bGot) {
		t.Errorf("b got the lease at %s, before a stopped believing at %s", bGot.Format(time.StampMicro), aLost.Format(time.StampMicro))
	}
	if d := bGot.Sub(cut); d < witnessTTL-witnessTTL/3 {
		t.Errorf("b got the lease %s after a was cut off; a's last renewal (at most TTL/3 before the cut) was granted for a TTL", d)
	}
	t.Logf("a cut off at 0; a stopped believing at %s; b got the lease at %s (TTL %s)", aLost.Sub(cut), bGot.Sub(cut), witnessTTL)
}

// TestARestartedWitnessKeepsAGrantForItsFullTTL: kill -9 the witness while
// a holder holds, restart it on the same data dir: the other holder is
// refused, naming the first, until a full TTL after the restart.
func TestARestartedWitnessKeepsAGrantForItsFullTTL(t *testing.T) {
	addr, dataDir := freeAddr(t), filepath.Join(t.TempDir(), "witness")
	w := startWitness(t, addr, dataDir)
	client := witness.NewClient("http://"+addr, nil)
	cluster := "it" + uniq()

	a := runHolder(t, client, cluster, "a")
	waitGranted(t, a, 10*time.Second)
	w.kill() // SIGKILL: the grant survives only in the state file
	a.stop() // a stops believing; its release finds no witness
	restart := time.Now()
	startWitness(t, addr, dataDir)

	ctx := t.Context()
	refused := 0
	var granted time.Time
	eventually(t, witnessTTL+10*time.Second, "another holder gets the lease after the restored grant ends", func() error {
		ans, err := client.Claim(ctx, cluster, "b", witnessTTL)
		if err != nil {
			return err
		}
		if !ans.Granted {
			if ans.Holder != a.ID() {
				t.Fatalf("after the restart the lease is held by %q, want %s", ans.Holder, a.ID())
			}
			refused++
			return errors.New("refused")
		}
		granted = time.Now()
		return nil
	})
	if d := granted.Sub(restart); d < witnessTTL {
		t.Errorf("b got the lease %s after the witness was restarted, within the restored grant's TTL %s", d, witnessTTL)
	}
	if refused == 0 {
		t.Error("b was never refused after the restart: the grant was not restored")
	}
	t.Logf("witness restarted at 0; b refused %d times, granted at %s (TTL %s)", refused, granted.Sub(restart), witnessTTL)
}

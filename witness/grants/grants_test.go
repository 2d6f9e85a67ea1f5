package grants

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/deptest"
)

// TestImportDirection keeps the witness's decisions pure.
func TestImportDirection(t *testing.T) { deptest.Forbid(t, deptest.Pure...) }

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

const sec = time.Second

// step is one call in a scenario and what it must answer.
type step struct {
	at      int // ms after t0
	op      string
	cluster string
	holder  string
	ttl     time.Duration
	// want, for claims: granted, holder, remaining, renewal, durable change
	granted   bool
	holderNow string
	remaining time.Duration
	renewal   bool
	durable   bool
	released  bool // for releases
}

func TestClaimRenewReleaseExpire(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
	}{
		{"a free lease is granted", []step{
			{at: 0, op: "claim", cluster: "c", holder: "a", ttl: 3 * sec, granted: true, holderNow: "a", remaining: 3 * sec, durable: true},
		}},
		{"a held lease is refused with the holder and the time left", []step{
			{at: 0, op: "claim", cluster: "c", holder: "a", ttl: 3 * sec, granted: true, holderNow: "a", remaining: 3 * sec, durable: true},
			{at: 1000, op: "claim", cluster: "c", holder: "b", ttl: 3 * sec, holderNow: "a", remaining: 2 * sec},
		}},
		{"a renewal extends the grant without a durable change", []step{
			{at: 0, op: "claim", cluster: "c", holder: "a", ttl: 3 * sec, granted: true, holderNow: "a", remaining: 3 * sec, durable: true},
			{at: 1000, op: "claim", cluster: "c", holder: "a", ttl: 3 * sec, granted: true, holderNow: "a", remaining: 3 * sec, renewal: true},
			{at: 3500, op: "claim", cluster: "c", holder: "b", ttl: 3 * sec, holderNow: "a", remaining: 500 * time.Millisecond},
		}},
		{"a renewal with a shorter ttl never shortens the grant", []step{
			{at: 0, op: "claim", cluster: "c", holder: "a", ttl: 10 * sec, granted: true, holderNow: "a", remaining: 10 * sec, durable: true},
			{at: 1000, op: "claim", cluster: "c", holder: "a", ttl: 1 * sec, granted: true, holderNow: "a", remaining: 9 * sec, renewal: true},
			{at: 5000, op: "claim", cluster: "c", holder: "b", ttl: 1 * sec, holderNow: "a", remaining: 5 * sec},
		}},
		{"a renewal with a longer ttl is a durable change", []step{
			{at: 0, op: "claim", cluster: "c", holder: "a", ttl: 1 * sec, granted: true, holderNow: "a", remaining: 1 * sec, durable: true},
			{at: 500, op: "claim", cluster: "c", holder: "a", ttl: 4 * sec, granted: true, holderNow: "a", remaining: 4 * sec, renewal: true, durable: true},
		}},
		{"an expired lease goes to the next claimant", []step{
			{at: 0, op: "claim", cluster: "c", holder: "a", ttl: 3 * sec, granted: true, holderNow: "a", remaining: 3 * sec, durable: true},
			{at: 2999, op: "claim", cluster: "c", holder: "b", ttl: 3 * sec, holderNow: "a", remaining: time.Millisecond},
			{at: 3000, op: "claim", cluster: "c", holder: "b", ttl: 3 * sec, granted: true, holderNow: "b", remaining: 3 * sec, durable: true},
		}},
		{"the old holder coming back after expiry gets a new grant, not a renewal", []step{
			{at: 0, op: "claim", cluster: "c", holder: "a", ttl: 1 * sec, granted: true, holderNow: "a", remaining: 1 * sec, durable: true},
			{at: 5000, op: "claim", cluster: "c", holder: "a", ttl: 1 * sec, granted: true, holderNow: "a", remaining: 1 * sec, durable: true},
		}},
		{"release frees the lease at once", []step{
			{at: 0, op: "claim", cluster: "c", holder: "a", ttl: 3 * sec, granted: true, holderNow: "a", remaining: 3 * sec, durable: true},
			{at: 100, op: "release", cluster: "c", holder: "a", released: true},
			{at: 100, op: "claim", cluster: "c", holder: "b", ttl: 3 * sec, granted: true, holderNow: "b", remaining: 3 * sec, durable: true},
		}},
		{"only the holder can release", []step{
			{at: 0, op: "claim", cluster: "c", holder: "a", ttl: 3 * sec, granted: true, holderNow: "a", remaining: 3 * sec, durable: true},
			{at: 100, op: "release", cluster: "c", holder: "b"},
			{at: 200, op: "claim", cluster: "c", holder: "b", ttl: 3 * sec, holderNow: "a", remaining: 2800 * time.Millisecond},
		}},
		{"releasing a free lease changes nothing", []step{
			{at: 0, op: "release", cluster: "c", holder: "a"},
		}},
		{"clusters are independent", []step{
			{at: 0, op: "claim", cluster: "c1", holder: "a", ttl: 3 * sec, granted: true, holderNow: "a", remaining: 3 * sec, durable: true},
			{at: 0, op: "claim", cluster: "c2", holder: "b", ttl: 3 * sec, granted: true, holderNow: "b", remaining: 3 * sec, durable: true},
			{at: 1, op: "claim", cluster: "c1", holder: "b", ttl: 3 * sec, holderNow: "a", remaining: 2999 * time.Millisecond},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tab := New()
			for i, s := range tc.steps {
				switch s.op {
				case "claim":
					a, err := tab.Claim(s.cluster, s.holder, s.ttl, at(s.at))
					if err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
					if a.Granted != s.granted || a.Holder != s.holderNow || a.Remaining != s.remaining || a.Renewal != s.renewal || a.DurableChanged != s.durable || a.Cluster != s.cluster {
						t.Errorf("step %d: claim of %s by %s at %dms = %+v\nwant granted=%v holder=%s remaining=%s renewal=%v durable=%v",
							i, s.cluster, s.holder, s.at, a, s.granted, s.holderNow, s.remaining, s.renewal, s.durable)
					}
					if !a.Expires.Equal(at(s.at).Add(a.Remaining)) {
						t.Errorf("step %d: expires %s and remaining %s disagree", i, a.Expires, a.Remaining)
					}
				case "release":
					ok, err := tab.Release(s.cluster, s.holder, at(s.at))
					if err != nil || ok != s.released {
						t.Errorf("step %d: release of %s by %s = %v, %v; want %v", i, s.cluster, s.holder, ok, err, s.released)
					}
				}
			}
		})
	}
}

func TestBadClaimsAreRefused(t *testing.T) {
	tests := []struct {
		name, cluster, holder string
		ttl                   time.Duration
		want                  string
	}{
		{"empty cluster", "", "a", sec, "cluster name"},
		{"empty holder", "c", "", sec, "holder name"},
		{"control character", "c\n", "a", sec, "cluster name"},
		{"overlong holder", "c", strings.Repeat("h", MaxNameLen+1), sec, "holder name"},
		{"zero ttl", "c", "a", 0, "ttl"},
		{"sub-millisecond ttl", "c", "a", time.Microsecond, "ttl"},
		{"ttl over the maximum", "c", "a", MaxTTL + 1, "ttl"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tab := New()
			_, err := tab.Claim(tc.cluster, tc.holder, tc.ttl, t0)
			if !errors.Is(err, ErrBadClaim) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Claim(%q, %q, %s) = %v, want ErrBadClaim about %s", tc.cluster, tc.holder, tc.ttl, err, tc.want)
			}
			if len(tab.Grants(t0)) != 0 {
				t.Errorf("a refused claim left a grant: %+v", tab.Grants(t0))
			}
		})
	}
	if _, err := New().Release("", "a", t0); !errors.Is(err, ErrBadClaim) {
		t.Errorf("Release with an empty cluster = %v, want ErrBadClaim", err)
	}
}

func TestRestoreHonoursEveryGrantForItsFullTTL(t *testing.T) {
	tab := New()
	mustClaim(t, tab, "c1", "a", 2*sec, at(0))
	mustClaim(t, tab, "c2", "b", 5*sec, at(0))
	mustClaim(t, tab, "c2", "b", sec, at(4000)) // renewal: TTL stays 5 s
	durable := tab.Durable(at(4500))
	want := []Durable{{"c2", "b", 5 * sec}} // c1 expired at 2 s
	if len(durable) != 1 || durable[0] != want[0] {
		t.Fatalf("Durable = %+v, want %+v", durable, want)
	}

	// Restarted much later (or with a clock that jumped): still a full TTL.
	restarted, err := Restore(durable, at(60_000))
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := restarted.Claim("c2", "x", sec, at(64_999)); a.Granted || a.Holder != "b" || a.Remaining != time.Millisecond {
		t.Errorf("claim of c2 by another holder 4.999 s after the restart = %+v, want refused (held by b for 1 ms more)", a)
	}
	if a, _ := restarted.Claim("c2", "x", sec, at(65_000)); !a.Granted {
		t.Errorf("claim of c2 a full TTL after the restart = %+v, want granted", a)
	}
	if a, _ := restarted.Claim("c1", "x", sec, at(60_000)); !a.Granted {
		t.Errorf("c1 was not persisted, so it is free: %+v", a)
	}

	if _, err := Restore([]Durable{{"c", "a", sec}, {"c", "b", sec}}, t0); !errors.Is(err, ErrBadClaim) {
		t.Errorf("Restore with two holders of one cluster = %v, want ErrBadClaim", err)
	}
	if _, err := Restore([]Durable{{"c", "a", 0}}, t0); !errors.Is(err, ErrBadClaim) {
		t.Errorf("Restore with a zero TTL = %v, want ErrBadClaim", err)
	}
}

func TestExpireAndNextExpiry(t *testing.T) {
	tab := New()
	if _, ok := tab.NextExpiry(); ok {
		t.Fatal("an empty table has a next expiry")
	}
	mustClaim(t, tab, "c1", "a", 2*sec, at(0))
	mustClaim(t, tab, "c2", "b", 1*sec, at(0))
	if next, ok := tab.NextExpiry(); !ok || !next.Equal(at(1000)) {
		t.Errorf("NextExpiry = %s, %v; want %s", next, ok, at(1000))
	}
	if gone := tab.Expire(at(999)); len(gone) != 0 {
		t.Errorf("Expire before any expiry dropped %+v", gone)
	}
	gone := tab.Expire(at(1500))
	if len(gone) != 1 || gone[0].Cluster != "c2" {
		t.Errorf("Expire at 1.5 s dropped %+v, want c2", gone)
	}
	if gs := tab.Grants(at(1500)); len(gs) != 1 || gs[0].Cluster != "c1" || gs[0].Holder != "a" || !gs[0].Since.Equal(at(0)) {
		t.Errorf("Grants = %+v, want c1 held by a since t0", gs)
	}
}

func TestCloneIsIndependent(t *testing.T) {
	tab := New()
	mustClaim(t, tab, "c", "a", sec, t0)
	c := tab.Clone()
	mustClaim(t, c, "d", "b", sec, t0)
	if len(tab.Grants(t0)) != 1 || len(c.Grants(t0)) != 2 {
		t.Errorf("clone and original share state: %+v / %+v", tab.Grants(t0), c.Grants(t0))
	}
}

func mustClaim(t *testing.T, tab *Table, cluster, holder string, ttl time.Duration, now time.Time) Answer {
	t.Helper()
	a, err := tab.Claim(cluster, holder, ttl, now)
	if err != nil || !a.Granted {
		t.Fatalf("claim of %s by %s: %+v, %v", cluster, holder, a, err)
	}
	return a
}

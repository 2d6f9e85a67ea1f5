package grants

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
)

// ErrBadClaim is returned for a claim or release the table cannot accept: an
// empty or overlong name, or a TTL out of range.
var ErrBadClaim = errors.New("grants: bad claim")

// MaxTTL bounds a grant's TTL: a restarted witness honours every persisted
// grant for its full TTL, so a huge one would lock a cluster out for as long.
const MaxTTL = 10 * time.Minute

// MaxNameLen bounds cluster and holder names (bytes).
const MaxNameLen = 253

// Grant is one cluster's lease.
type Grant struct {
	Cluster string
	Holder  string
	// TTL is the longest TTL this holder was granted in a row; a restarted
	// witness honours the grant for that long.
	TTL     time.Duration
	Since   time.Time // when this holder got it
	Expires time.Time
}

// Durable is what must survive a witness restart for one grant.
type Durable struct {
	Cluster string
	Holder  string
	TTL     time.Duration
}

// Answer is the outcome of a claim.
type Answer struct {
	Granted   bool
	Cluster   string
	Holder    string // who holds the lease now: the claimant if Granted
	Expires   time.Time
	Remaining time.Duration // until Expires
	// Renewal is true when the claimant already held the lease.
	Renewal bool
	// DurableChanged says the durable record of this cluster changed (new
	// holder or longer TTL): the caller must persist Durable before it
	// answers, or undo the claim.
	DurableChanged bool
}

// Table holds the leases of every cluster. It is not safe for concurrent use.
type Table struct {
	grants map[string]Grant
}

// New returns an empty table.
func New() *Table { return &Table{grants: map[string]Grant{}} }

// Restore rebuilds the table of a restarted witness from the records it had
// persisted: every one is honoured for its full TTL from now (see the
// package comment for why not from its old expiry).
func Restore(records []Durable, now time.Time) (*Table, error) {
	t := New()
	for _, r := range records {
		if err := validate(r.Cluster, r.Holder, r.TTL); err != nil {
			return nil, fmt.Errorf("restoring the grant of cluster %q: %w", r.Cluster, err)
		}
		if g, dup := t.grants[r.Cluster]; dup {
			return nil, fmt.Errorf("restoring cluster %q: held by both %q and %q: %w", r.Cluster, g.Holder, r.Holder, ErrBadClaim)
		}
		t.grants[r.Cluster] = Grant{Cluster: r.Cluster, Holder: r.Holder, TTL: r.TTL, Since: now, Expires: now.Add(r.TTL)}
	}
	return t, nil
}

// Clone returns an independent copy, so a caller can try a claim and keep
// the old table if persisting the new one fails.
func (t *Table) Clone() *Table {
	c := New()
	for k, g := range t.grants {
		c.grants[k] = g
	}
	return c
}

// ValidName reports whether s can name a cluster or a holder: 1 to
// MaxNameLen bytes of printable characters.
func ValidName(s string) bool {
	return s != "" && len(s) <= MaxNameLen && strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0
}

func validate(cluster, holder string, ttl time.Duration) error {
	switch {
	case !ValidName(cluster):
		return fmt.Errorf("cluster name %q: want 1 to %d printable characters: %w", cluster, MaxNameLen, ErrBadClaim)
	case !ValidName(holder):
		return fmt.Errorf("holder name %q: want 1 to %d printable characters: %w", holder, MaxNameLen, ErrBadClaim)
	case ttl < time.Millisecond || ttl > MaxTTL:
		return fmt.Errorf("ttl %s: want 1ms to %s: %w", ttl, MaxTTL, ErrBadClaim)
	}
	return nil
}

// Claim grants cluster's lease to holder for ttl from now if it is free,
// expired or already held by holder (a renewal), and refuses it otherwise,
// saying who holds it and for how long.
func (t *Table) Claim(cluster, holder string, ttl time.Duration, now time.Time) (Answer, error) {
	if err := validate(cluster, holder, ttl); err != nil {
		return Answer{}, err
	}
	g, held := t.live(cluster, now)
	switch {
	case held && g.Holder != holder:
		return Answer{Cluster: cluster, Holder: g.Holder, Expires: g.Expires, Remaining: g.Expires.Sub(now)}, nil
	case held: // renewal: never shorter than what the holder may already believe
		a := Answer{Granted: true, Cluster: cluster, Holder: holder, Renewal: true, DurableChanged: ttl > g.TTL}
		g.TTL = max(g.TTL, ttl)
		if exp := now.Add(ttl); exp.After(g.Expires) {
			g.Expires = exp
		}
		t.grants[cluster] = g
		a.Expires, a.Remaining = g.Expires, g.Expires.Sub(now)
		return a, nil
	default:
		g = Grant{Cluster: cluster, Holder: holder, TTL: ttl, Since: now, Expires: now.Add(ttl)}
		t.grants[cluster] = g
		return Answer{Granted: true, Cluster: cluster, Holder: holder, Expires: g.Expires, Remaining: ttl, DurableChanged: true}, nil
	}
}

// Release frees cluster's lease if holder holds it and reports whether it
// did (then the durable record changed). Releasing what one does not hold
// changes nothing.
func (t *Table) Release(cluster, holder string, now time.Time) (bool, error) {
	if !ValidName(cluster) || !ValidName(holder) {
		return false, fmt.Errorf("release of cluster %q by %q: names must be 1 to %d printable characters: %w", cluster, holder, MaxNameLen, ErrBadClaim)
	}
	g, held := t.live(cluster, now)
	if !held || g.Holder != holder {
		return false, nil
	}
	delete(t.grants, cluster)
	return true, nil
}

// Holder returns cluster's unexpired grant, if any.
func (t *Table) Holder(cluster string, now time.Time) (Grant, bool) { return t.live(cluster, now) }

func (t *Table) live(cluster string, now time.Time) (Grant, bool) {
	g, ok := t.grants[cluster]
	if !ok || !now.Before(g.Expires) {
		return Grant{}, false
	}
	return g, true
}

// Expire drops the grants that have expired by now and returns them; if
// any, the durable records changed.
func (t *Table) Expire(now time.Time) []Grant {
	var out []Grant
	for k, g := range t.grants {
		if !now.Before(g.Expires) {
			out = append(out, g)
			delete(t.grants, k)
		}
	}
	sortGrants(out)
	return out
}

// NextExpiry returns the earliest expiry of any grant in the table.
func (t *Table) NextExpiry() (time.Time, bool) {
	var next time.Time
	for _, g := range t.grants {
		if next.IsZero() || g.Expires.Before(next) {
			next = g.Expires
		}
	}
	return next, !next.IsZero()
}

// Grants returns the unexpired grants sorted by cluster.
func (t *Table) Grants(now time.Time) []Grant {
	var out []Grant
	for k := range t.grants {
		if g, ok := t.live(k, now); ok {
			out = append(out, g)
		}
	}
	sortGrants(out)
	return out
}

// Durable returns what a restart must honour: every unexpired grant's
// cluster, holder and TTL, sorted by cluster.
func (t *Table) Durable(now time.Time) []Durable {
	var out []Durable
	for _, g := range t.Grants(now) {
		out = append(out, Durable{Cluster: g.Cluster, Holder: g.Holder, TTL: g.TTL})
	}
	return out
}

func sortGrants(gs []Grant) {
	slices.SortFunc(gs, func(a, b Grant) int { return strings.Compare(a.Cluster, b.Cluster) })
}

package witness

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/batonhq/baton/witness/grants"
)

// ErrUnavailable is returned when the witness cannot persist a grant; it
// grants nothing then, and the holder should retry.
var ErrUnavailable = errors.New("witness: unavailable")

// leases is the witness's one table behind a lock, shared by Server and
// Memory. save persists the durable records; a claim or release that
// changes them is answered only after save succeeded, and undone if it
// failed.
type leases struct {
	mu      sync.Mutex
	table   *grants.Table
	now     func() time.Time
	save    func([]grants.Durable) error
	log     *slog.Logger
	changed chan struct{} // poked when the next expiry may have moved
}

func newLeases(table *grants.Table, now func() time.Time, save func([]grants.Durable) error, log *slog.Logger) *leases {
	return &leases{table: table, now: now, save: save, log: log, changed: make(chan struct{}, 1)}
}

func (l *leases) poke() {
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// claim answers a claim: granted, or held by another holder; an error only
// when the grant could not be persisted.
func (l *leases) claim(req ClaimRequest) (ClaimResponse, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	expired := l.expireLocked(now)
	next := l.table.Clone()
	a, err := next.Claim(req.Cluster, req.Holder, time.Duration(req.TTLMS)*time.Millisecond, now)
	if err != nil {
		return ClaimResponse{}, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if a.DurableChanged || expired {
		if err := l.save(next.Durable(now)); err != nil && a.DurableChanged {
			l.log.Error("cannot persist a grant; refusing it", "cluster", req.Cluster, "holder", req.Holder, "err", err)
			return ClaimResponse{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
		} else if err != nil {
			l.log.Warn("cannot remove expired grants from the state file", "err", err)
		}
	}
	l.table = next
	resp := ClaimResponse{Granted: a.Granted, Cluster: a.Cluster, Holder: a.Holder, ExpiresInMS: ceilMS(a.Remaining)}
	switch {
	case a.Granted && !a.Renewal:
		l.log.Info("lease granted", "cluster", a.Cluster, "holder", a.Holder, "ttl", time.Duration(req.TTLMS)*time.Millisecond)
		l.poke()
	case a.Granted:
		l.log.Debug("lease renewed", "cluster", a.Cluster, "holder", a.Holder, "expires_in", a.Remaining)
		l.poke()
	default:
		l.log.Debug("lease refused", "cluster", a.Cluster, "claimant", req.Holder, "holder", a.Holder, "expires_in", a.Remaining)
	}
	return resp, nil
}

// release frees the lease if req.Holder holds it.
func (l *leases) release(req ReleaseRequest) (ReleaseResponse, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	expired := l.expireLocked(now)
	next := l.table.Clone()
	released, err := next.Release(req.Cluster, req.Holder, now)
	if err != nil {
		return ReleaseResponse{}, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if released || expired {
		// A release that is not persisted would keep the lease busy for
		// a TTL after a restart: refuse it, the holder may retry.
		if err := l.save(next.Durable(now)); err != nil && released {
			return ReleaseResponse{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
		} else if err != nil {
			l.log.Warn("cannot remove expired grants from the state file", "err", err)
		}
	}
	l.table = next
	if released {
		l.log.Info("lease released", "cluster", req.Cluster, "holder", req.Holder)
		l.poke()
	}
	return ReleaseResponse{Released: released, Cluster: req.Cluster}, nil
}

// status lists the unexpired grants.
func (l *leases) status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	st := Status{Grants: []GrantView{}}
	for _, g := range l.table.Grants(now) {
		st.Grants = append(st.Grants, GrantView{Cluster: g.Cluster, Holder: g.Holder, TTLMS: g.TTL.Milliseconds(),
			ExpiresInMS: ceilMS(g.Expires.Sub(now)), HeldMS: now.Sub(g.Since).Milliseconds()})
	}
	return st
}

// sweep drops expired grants from the table and the state file, and
// returns when the next one expires.
func (l *leases) sweep() (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if l.expireLocked(now) {
		if err := l.save(l.table.Durable(now)); err != nil {
			// Harmless: the file keeps a grant a restart would honour
			// for one TTL more. The next change retries.
			l.log.Warn("cannot remove expired grants from the state file", "err", err)
		}
	}
	return l.table.NextExpiry()
}

// expireLocked drops expired grants and reports whether there were any.
func (l *leases) expireLocked(now time.Time) bool {
	gone := l.table.Expire(now)
	for _, g := range gone {
		l.log.Info("lease expired", "cluster", g.Cluster, "holder", g.Holder)
	}
	return len(gone) > 0
}

// ceilMS rounds up to whole milliseconds, so "expires in 0 ms" never
// describes a grant that is still live.
func ceilMS(d time.Duration) int64 {
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

package witness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/batonhq/baton/witness/grants"
)

// ErrHolderUsed is returned by a second call of Holder.Run.
var ErrHolderUsed = errors.New("witness: Holder.Run called twice; make a new Holder")

// MinHolderTTL is the shortest TTL a Holder accepts: below it, renewing
// every TTL/3 leaves no room for a network round trip.
const MinHolderTTL = 30 * time.Millisecond

// HolderConfig configures a Holder.
type HolderConfig struct {
	Witness Witness
	Cluster string // the lease's name: one per cluster
	// Name identifies this holder to people (e.g. the server's name). The
	// holder's ID on the wire adds a random suffix: a release that arrives
	// late must never free a grant that a later Holder of the same name
	// believes in, and a restarted process must not take over its
	// predecessor's grant as its own.
	Name string
	// TTL is how long the witness keeps the lease after each renewal,
	// whole milliseconds; the holder believes for 3/4 of it from each
	// renewal's send.
	TTL time.Duration
	// OnChange, if set, is called from Run's goroutine whenever Granted
	// changes. It may come a little late when the lease lapses; read
	// Granted at each decision.
	OnChange func(granted bool)
	Logger   *slog.Logger
}

// Holder claims and keeps a witness lease for one holder.
//
// The client rule that makes the witness safe: Granted is true only until
// the holder's own clock reads the send time of its last granted claim + 3/4
// TTL. The witness grants from when it receives the claim (later) for a full
// TTL on its clock, so up to ±10% difference in clock rates and any network
// delay leave the holder's belief inside the witness's grant. A refusal or
// a release ends the belief at once.
type Holder struct {
	cfg HolderConfig
	id  string
	log *slog.Logger

	mu         sync.Mutex
	validUntil time.Time // monotonic; zero when not granted
	reported   bool      // what OnChange last said
	failing    bool      // the last claim got no answer (logged once per outage)
	used       bool
}

// NewHolder checks cfg and returns a holder; call Run to claim.
func NewHolder(cfg HolderConfig) (*Holder, error) {
	switch {
	case cfg.Witness == nil:
		return nil, errors.New("witness holder: no Witness given")
	case !grants.ValidName(cfg.Cluster):
		return nil, fmt.Errorf("witness holder: cluster %q: name it with 1 to %d printable characters", cfg.Cluster, grants.MaxNameLen)
	case !grants.ValidName(cfg.Name) || len(cfg.Name) > grants.MaxNameLen-7:
		return nil, fmt.Errorf("witness holder: name %q: 1 to %d printable characters", cfg.Name, grants.MaxNameLen-7)
	case cfg.TTL < MinHolderTTL || cfg.TTL > grants.MaxTTL || cfg.TTL%time.Millisecond != 0:
		return nil, fmt.Errorf("witness holder: TTL %s: want whole milliseconds from %s to %s", cfg.TTL, MinHolderTTL, grants.MaxTTL)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	var suffix [3]byte
	_, _ = rand.Read(suffix[:])
	id := cfg.Name + "-" + hex.EncodeToString(suffix[:])
	return &Holder{cfg: cfg, id: id, log: cfg.Logger.With("witness_cluster", cfg.Cluster, "witness_holder", id)}, nil
}

// ID is the holder's name on the wire (Name plus a random suffix).
func (h *Holder) ID() string { return h.id }

// Granted reports whether this holder may count the witness's vote now.
func (h *Holder) Granted() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return time.Now().Before(h.validUntil)
}

// Run claims the lease and renews it every TTL/3 until ctx ends, then stops
// believing and releases it. It returns nil after ctx ends.
func (h *Holder) Run(ctx context.Context) error {
	h.mu.Lock()
	if h.used {
		h.mu.Unlock()
		return ErrHolderUsed
	}
	h.used = true
	h.mu.Unlock()

	every := h.cfg.TTL / 3
	nextClaim := time.NewTimer(0)
	defer nextClaim.Stop()
	lapse := time.NewTimer(time.Hour) // fires when the belief lapses
	lapse.Stop()
	defer lapse.Stop()
	for {
		select {
		case <-ctx.Done():
			h.end()
			return nil
		case <-lapse.C:
			h.report()
			continue
		case <-nextClaim.C:
		}
		wait := h.claim(ctx, every)
		nextClaim.Reset(wait)
		h.mu.Lock()
		until := h.validUntil
		h.mu.Unlock()
		if d := time.Until(until); d > 0 {
			lapse.Reset(d)
		}
		h.report()
	}
}

// claim sends one claim and returns how long to wait before the next.
func (h *Holder) claim(ctx context.Context, every time.Duration) time.Duration {
	send := time.Now()
	cctx, cancel := context.WithTimeout(ctx, every)
	a, err := h.cfg.Witness.Claim(cctx, h.cfg.Cluster, h.id, h.cfg.TTL)
	cancel()
	h.mu.Lock()
	defer h.mu.Unlock()
	wasFailing := h.failing
	h.failing = err != nil
	if err == nil && wasFailing {
		h.log.Info("the witness answers again")
	}
	switch {
	case err != nil:
		if ctx.Err() == nil && !wasFailing {
			h.log.Warn("cannot reach the witness; the lease lapses unless a renewal gets through", "err", err, "believed_for", max(time.Until(h.validUntil), 0))
		} else if ctx.Err() == nil {
			h.log.Debug("cannot reach the witness", "err", err)
		}
	case a.Granted:
		if until := send.Add(h.cfg.TTL * 3 / 4); until.After(h.validUntil) {
			h.validUntil = until
		}
	default:
		h.validUntil = time.Time{}
		h.log.Debug("witness lease held by another", "holder", a.Holder, "expires_in", a.ExpiresIn)
		if a.ExpiresIn > 0 {
			// Ask again as soon as it can be free.
			return max(min(every-time.Since(send), a.ExpiresIn), time.Millisecond)
		}
	}
	return max(every-time.Since(send), 0)
}

// report calls OnChange if Granted changed since the last call.
func (h *Holder) report() {
	granted := h.Granted()
	h.mu.Lock()
	changed := granted != h.reported
	h.reported = granted
	h.mu.Unlock()
	if !changed {
		return
	}
	if granted {
		h.log.Info("witness lease held")
	} else {
		h.log.Warn("witness lease lost")
	}
	if h.cfg.OnChange != nil {
		h.cfg.OnChange(granted)
	}
}

// end stops believing, then releases the lease so another holder need not
// wait for it to expire.
func (h *Holder) end() {
	h.mu.Lock()
	h.validUntil = time.Time{}
	h.mu.Unlock()
	h.report()
	ctx, cancel := context.WithTimeout(context.Background(), min(h.cfg.TTL, 2*time.Second))
	defer cancel()
	if err := h.cfg.Witness.Release(ctx, h.cfg.Cluster, h.id); err != nil {
		h.log.Warn("releasing the witness lease; it expires by itself", "err", err)
	}
}

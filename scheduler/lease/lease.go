package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the JetStream key-value bucket holding the lease.
const Bucket = "baton_leader"

const key = "leader"

// DefaultTTL is how long a lease outlives its holder's last renewal.
const DefaultTTL = 3 * time.Second

// State is what a server knows about the lease.
type State struct {
	Leader bool   // this server holds the lease and may act
	Epoch  uint64 // this server's fencing token while Leader
	Holder string // who holds it, if known
}

// record is the lease's value.
type record struct {
	Holder string    `json:"holder"`
	Since  time.Time `json:"since"`
}

// Clock tells the time.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Config configures a Lease.
type Config struct {
	Holder string        // this server's unique name (name plus a per-process id)
	TTL    time.Duration // default DefaultTTL
	Clock  Clock
	Logger *slog.Logger
}

// Lease campaigns for and holds the leadership.
type Lease struct {
	cfg Config
	kv  jetstream.KeyValue
	log *slog.Logger

	state    State
	revision uint64    // of our last write, while leader
	renewed  time.Time // when our last successful write was sent
}

// Open opens (creating if needed) the lease bucket. Keys expire TTL after
// their last write; replicas is the JetStream replication factor.
func Open(ctx context.Context, nc *nats.Conn, ttl time.Duration, replicas int) (jetstream.KeyValue, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("lease: JetStream: %w", err)
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: Bucket, Description: "Baton server leadership lease", History: 1,
		TTL: ttl, Replicas: max(replicas, 1), Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("lease: opening bucket %q: %w", Bucket, err)
	}
	return kv, nil
}

// New returns a lease campaigner on kv.
func New(kv jetstream.KeyValue, cfg Config) *Lease {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Clock == nil {
		cfg.Clock = systemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Lease{cfg: cfg, kv: kv, log: cfg.Logger}
}

// mustStepDown reports whether a leader whose last successful renewal was
// sent at renewed must stop acting at now: a quarter TTL before the lease
// can expire, so it has stopped before anyone else can take over.
func mustStepDown(renewed, now time.Time, ttl time.Duration) bool {
	return now.Sub(renewed) >= ttl-ttl/4
}

// Run campaigns and renews until ctx ends, calling onChange (from Run's
// goroutine) whenever the State changes. On return it resigns, so a
// successor need not wait for the lease to expire.
func (l *Lease) Run(ctx context.Context, onChange func(State)) error {
	tick := l.cfg.TTL / 4
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			l.resign()
			if l.state.Leader {
				l.set(State{}, onChange)
			}
			return nil
		case <-t.C:
		}
		l.step(ctx, onChange)
		t.Reset(tick)
	}
}

func (l *Lease) set(s State, onChange func(State)) {
	if s == l.state {
		return
	}
	l.state = s
	switch {
	case s.Leader:
		l.log.Info("leadership acquired", "epoch", s.Epoch)
	default:
		l.log.Info("following", "leader", s.Holder)
	}
	onChange(s)
}

// step renews or campaigns once.
func (l *Lease) step(ctx context.Context, onChange func(State)) {
	now := l.cfg.Clock.Now()
	value, _ := json.Marshal(record{Holder: l.cfg.Holder, Since: now.UTC()})
	timeout := l.cfg.TTL / 4
	if l.state.Leader {
		// A renewal that hangs must not keep us acting past the point
		// where we must have stopped.
		timeout = min(timeout, l.renewed.Add(l.cfg.TTL-l.cfg.TTL/4).Sub(now))
	}
	cctx, cancel := context.WithTimeout(ctx, max(timeout, time.Millisecond))
	defer cancel()
	if l.state.Leader {
		rev, err := l.kv.Update(cctx, key, value, l.revision)
		switch {
		case err == nil:
			l.revision, l.renewed = rev, now
		case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyNotFound):
			l.log.Warn("lease lost to another server", "err", err)
			l.set(State{}, onChange)
		case mustStepDown(l.renewed, l.cfg.Clock.Now(), l.cfg.TTL):
			l.log.Warn("cannot renew the lease in time; stepping down", "err", err)
			l.set(State{}, onChange)
		default:
			l.log.Warn("renewing the lease", "err", err)
		}
		return
	}
	rev, err := l.kv.Create(cctx, key, value)
	if err == nil {
		l.revision, l.renewed = rev, now
		l.set(State{Leader: true, Epoch: rev, Holder: l.cfg.Holder}, onChange)
		return
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		l.log.Debug("campaigning", "err", err)
		return
	}
	e, err := l.kv.Get(cctx, key)
	if err != nil {
		return
	}
	var r record
	_ = json.Unmarshal(e.Value(), &r)
	l.set(State{Holder: r.Holder}, onChange)
}

// resign deletes the lease if this server still holds it.
func (l *Lease) resign() {
	if !l.state.Leader {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := l.kv.Delete(ctx, key, jetstream.LastRevision(l.revision)); err != nil {
		l.log.Warn("resigning the lease", "err", err)
	}
}

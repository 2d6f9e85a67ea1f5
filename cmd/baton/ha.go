package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/batonhq/baton/scheduler"
	"github.com/batonhq/baton/scheduler/fencing"
	"github.com/batonhq/baton/witness"
)

// openFencer loads --fence-config into ha (its levels and a Fencer over the
// driver binaries) and starts every device once, so that a bad parameter or
// a driver that will not start shows now, not when a node dies. The caller
// closes the returned Fencer.
func openFencer(ctx context.Context, path string, ha *scheduler.HAConfig, log *slog.Logger) (*fencing.Fencer, error) {
	cfg, err := fencing.Load(path)
	if err != nil {
		return nil, fmt.Errorf("--fence-config: %w", err)
	}
	cfg.ApplyLevels(&ha.Groups)
	f, err := fencing.NewFencer(cfg, fencing.Options{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("--fence-config %s: %w", path, err)
	}
	checkCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := f.Check(checkCtx); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("--fence-config %s: a fence device is not usable: %w", path, err)
	}
	ha.Fencer = f
	return f, nil
}

// leaderWitness holds the quorum witness's vote for this server while, and
// only while, it leads: a follower claiming it would take it from the
// leader's partition. It implements scheduler.Witness.
type leaderWitness struct {
	client  witness.Witness
	cluster string
	name    string
	ttl     time.Duration
	log     *slog.Logger

	mu     sync.Mutex
	holder *witness.Holder
	stop   context.CancelFunc
	done   chan struct{}
}

func newLeaderWitness(url, cluster, name string, ttl time.Duration, log *slog.Logger) *leaderWitness {
	return &leaderWitness{client: witness.NewClient(url, &http.Client{Timeout: ttl / 3}), cluster: cluster, name: name, ttl: ttl, log: log}
}

// Granted implements scheduler.Witness.
func (w *leaderWitness) Granted() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.holder != nil && w.holder.Granted()
}

// lead starts claiming the witness (a new Holder for each term) or stops.
func (w *leaderWitness) lead(ctx context.Context, leading bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if leading == (w.holder != nil) {
		return
	}
	if !leading {
		w.stop()
		<-w.done // released, and no longer believed
		w.holder, w.stop, w.done = nil, nil, nil
		return
	}
	h, err := witness.NewHolder(witness.HolderConfig{Witness: w.client, Cluster: w.cluster, Name: w.name, TTL: w.ttl, Logger: w.log})
	if err != nil {
		w.log.Error("witness", "err", err)
		return
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = h.Run(runCtx) }()
	w.holder, w.stop, w.done = h, stop, done
}

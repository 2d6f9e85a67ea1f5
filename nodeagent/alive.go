package nodeagent

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/batonhq/baton/wire"
)

// DefaultAliveInterval is Config.AliveInterval's default: the server
// suspects a node after three missed beats, so failure detection takes
// about a second, while the full heartbeat stays at one per second.
const DefaultAliveInterval = 250 * time.Millisecond

// sendAlive publishes a liveness beat every Config.AliveInterval until ctx
// ends. The beats are tiny and cost nothing to build, unlike the full
// heartbeat, which measures the machine; they run on their own goroutine so
// that a slow measurement never delays them.
func (a *Agent) sendAlive(ctx context.Context, nc *nats.Conn) {
	ticker := a.clock.NewTicker(a.cfg.AliveInterval)
	defer ticker.Stop()
	subject := wire.SubjectAlive(a.cfg.Node)
	for seq := uint64(1); ; seq++ {
		beat := wire.Alive{V: wire.Version, Node: a.cfg.Node, Seq: seq, IntervalMS: a.cfg.AliveInterval.Milliseconds()}
		if err := nc.Publish(subject, wire.Encode(beat)); err != nil {
			a.log.Debug("publishing liveness beat", "seq", seq, "err", err)
		}
		select {
		case <-ticker.C():
		case <-ctx.Done():
			return
		}
	}
}

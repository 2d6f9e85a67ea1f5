package scheduler

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/batonhq/baton/wire"
)

// NATSAgents sends commands to agents over NATS request/reply.
type NATSAgents struct {
	NC *nats.Conn
	// Epoch gives the leadership epoch to stamp on each command (see
	// Server.Epoch); nil sends 0.
	Epoch func() uint64
}

func (a NATSAgents) request(ctx context.Context, node string, cmd wire.Command) (wire.WorkloadStatus, error) {
	cmd.V = wire.Version
	if a.Epoch != nil {
		cmd.Epoch = a.Epoch()
	}
	msg, err := a.NC.RequestWithContext(ctx, wire.SubjectCommand(node), wire.Encode(cmd))
	if err != nil {
		return wire.WorkloadStatus{}, fmt.Errorf("%s command to node %s: %w (is its agent running?)", cmd.Op, node, err)
	}
	reply, err := wire.DecodeCommandReply(msg.Data)
	if err != nil {
		return wire.WorkloadStatus{}, fmt.Errorf("%s command to node %s: %w", cmd.Op, node, err)
	}
	if reply.Error != "" {
		return wire.WorkloadStatus{}, fmt.Errorf("%w: node %s: %s", ErrAgent, node, reply.Error)
	}
	if reply.Status == nil {
		return wire.WorkloadStatus{}, fmt.Errorf("%s command to node %s: %w: reply without status", cmd.Op, node, wire.ErrMalformed)
	}
	return *reply.Status, nil
}

// Start implements AgentClient.
func (a NATSAgents) Start(ctx context.Context, node string, spec wire.WorkloadSpec) (wire.WorkloadStatus, error) {
	return a.request(ctx, node, wire.Command{Op: wire.OpStart, Workload: &spec})
}

// Stop implements AgentClient.
func (a NATSAgents) Stop(ctx context.Context, node, id string) (wire.WorkloadStatus, error) {
	return a.request(ctx, node, wire.Command{Op: wire.OpStop, ID: id})
}

// SelfFence implements SelfFencer.
func (a NATSAgents) SelfFence(ctx context.Context, node string) error {
	c := wire.Command{V: wire.Version, Op: wire.OpSelfFence}
	if a.Epoch != nil {
		c.Epoch = a.Epoch()
	}
	msg, err := a.NC.RequestWithContext(ctx, wire.SubjectCommand(node), wire.Encode(c))
	if err != nil {
		return fmt.Errorf("self-fence to node %s: %w", node, err)
	}
	reply, err := wire.DecodeCommandReply(msg.Data)
	if err != nil {
		return fmt.Errorf("self-fence to node %s: %w", node, err)
	}
	if reply.Error != "" {
		return fmt.Errorf("%w: node %s: self-fence: %s", ErrAgent, node, reply.Error)
	}
	return nil
}

// Migrate implements MigrationAgents.
func (a NATSAgents) Migrate(ctx context.Context, node, op string, cmd wire.MigrationCmd) (wire.MigrationReply, error) {
	c := wire.Command{V: wire.Version, Op: op, Migration: &cmd}
	if a.Epoch != nil {
		c.Epoch = a.Epoch()
	}
	msg, err := a.NC.RequestWithContext(ctx, wire.SubjectCommand(node), wire.Encode(c))
	if err != nil {
		return wire.MigrationReply{}, fmt.Errorf("%s to node %s: %w (is its agent running?)", op, node, err)
	}
	reply, err := wire.DecodeCommandReply(msg.Data)
	if err != nil {
		return wire.MigrationReply{}, fmt.Errorf("%s to node %s: %w", op, node, err)
	}
	if reply.Error != "" {
		return wire.MigrationReply{}, fmt.Errorf("%w: node %s: %s: %s", ErrAgent, node, op, reply.Error)
	}
	if reply.Migration == nil {
		return wire.MigrationReply{}, nil
	}
	return *reply.Migration, nil
}

// Run consumes heartbeats, liveness beats and leave notices from nc, applies
// membership timeouts every tick, and publishes the leader's beacon every
// BeaconInterval while this server leads, until ctx ends. Malformed messages
// are logged and dropped.
func (s *Server) Run(ctx context.Context, nc *nats.Conn, tick time.Duration) error {
	if tick <= 0 {
		// Failure detection on evidence needs a step at least every 50 ms
		// (membership.FailoverConfig).
		tick = 50 * time.Millisecond
	}
	// Liveness beats go straight to the membership table on NATS's own
	// goroutine: they are tiny, and must not queue behind slow heartbeats.
	aliveSub, err := nc.Subscribe(wire.AliveWildcard, func(m *nats.Msg) {
		a, err := wire.DecodeAlive(m.Data)
		if err != nil || wire.SubjectAlive(a.Node) != m.Subject {
			s.log.Warn("dropping malformed liveness beat", "subject", m.Subject, "err", err, "bytes", len(m.Data))
			return
		}
		s.HandleAlive(a)
	})
	if err != nil {
		return fmt.Errorf("scheduler: subscribing to liveness beats: %w", err)
	}
	defer func() { _ = aliveSub.Unsubscribe() }()
	beacon := time.NewTicker(BeaconInterval)
	defer beacon.Stop()
	// Heartbeats are handled one at a time, in arrival order, on a
	// goroutine of ours rather than NATS's, so a slow store write slows
	// only heartbeat handling, never the connection.
	msgs := make(chan *nats.Msg, 1024)
	hbSub, err := nc.ChanSubscribe(wire.HeartbeatWildcard, msgs)
	if err != nil {
		return fmt.Errorf("scheduler: subscribing to heartbeats: %w", err)
	}
	defer func() { _ = hbSub.Unsubscribe() }()
	leaveSub, err := nc.ChanSubscribe(wire.LeaveWildcard, msgs)
	if err != nil {
		return fmt.Errorf("scheduler: subscribing to leave notices: %w", err)
	}
	defer func() { _ = leaveSub.Unsubscribe() }()
	if err := nc.Flush(); err != nil {
		return fmt.Errorf("scheduler: subscribing: %w", err)
	}
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	refresh := time.NewTicker(time.Second)
	defer refresh.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-refresh.C:
			// A follower answers reads from the store's latest state.
			if leader, _, _ := s.Leadership(); !leader {
				if err := s.Load(ctx); err != nil {
					s.log.Warn("follower refreshing desired state", "err", err)
				}
			}
		case <-ticker.C:
			s.Tick()
			s.Rebalance(ctx)
		case <-beacon.C:
			if b, ok := s.Beacon(); ok {
				if err := nc.Publish(wire.SubjectBeacon, wire.Encode(b)); err != nil {
					s.log.Warn("publishing the leader beacon", "err", err)
				}
			}
		case m := <-msgs:
			s.handleMessage(ctx, m)
		}
	}
}

func (s *Server) handleMessage(ctx context.Context, m *nats.Msg) {
	if m.Sub != nil && m.Sub.Subject == wire.LeaveWildcard {
		l, err := wire.DecodeLeave(m.Data)
		if err != nil {
			s.log.Warn("dropping malformed message", "subject", m.Subject, "err", err, "bytes", len(m.Data))
			return
		}
		s.HandleLeave(l)
		return
	}
	hb, err := wire.DecodeHeartbeat(m.Data)
	if err != nil {
		s.log.Warn("dropping malformed message", "subject", m.Subject, "err", err, "bytes", len(m.Data))
		return
	}
	if wire.SubjectHeartbeat(hb.Node) != m.Subject {
		s.log.Warn("dropping heartbeat sent on another node's subject", "subject", m.Subject, "node", hb.Node)
		return
	}
	s.HandleHeartbeat(ctx, hb)
}

package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/batonhq/baton/nodeagent/runner"
	"github.com/batonhq/baton/wire"
)

// The agent's part in high availability (see wire/ha.go for the protocol):
// liveness beats (alive.go), the probe listener (probe.go), health monitors
// of group resources (monitor.go), and self-fencing here: the agent holds
// the resources of resource groups stopped while it cannot be sure that a
// quorate leader counts it in, so that the majority may restart them
// elsewhere after its self-fence deadline. Plain workloads are not touched.

// fenceCheckInterval is how often the agent evaluates fenceVerdict besides
// evaluating it on every beacon: the bound on how late a silence is noticed.
const fenceCheckInterval = 100 * time.Millisecond

// fenceKillTimeout bounds one round of killing group resources; a round that
// fails is tried again at the next check.
const fenceKillTimeout = 10 * time.Second

// selfFence is the agent's self-fence state. Lock order: startMu before mu.
type selfFence struct {
	after time.Duration

	// startMu is held by starts of group resources and by the fence's kill
	// rounds, so that no start slips in between a verdict and the kills.
	startMu sync.Mutex

	mu     sync.Mutex
	state  fenceState
	fenced bool // the last verdict, as heartbeats report it
	// heard is closed, and replaced, when a quorate beacon arrives: starts
	// that an order holds back wait on it (see liftWait).
	heard chan struct{}

	wake chan struct{} // a beacon or an order came: evaluate now
}

func newSelfFence(after time.Duration) *selfFence {
	return &selfFence{after: after, wake: make(chan struct{}, 1), heard: make(chan struct{})}
}

// beacon records a beacon (already checked against the epochGuard).
func (f *selfFence) beacon(b wire.Beacon, now time.Time) {
	f.mu.Lock()
	f.state.beacon(b, now)
	if b.Quorate {
		close(f.heard)
		f.heard = make(chan struct{})
	}
	f.mu.Unlock()
	f.poke()
}

// groupStart records a start of a group resource of the leader of epoch
// and, if an order of that leader holds it back, waits for a quorate beacon
// for liftWait or until ctx ends. The caller then takes the verdict.
func (f *selfFence) groupStart(ctx context.Context, clock Clock, epoch uint64) {
	f.mu.Lock()
	f.state.groupStart(epoch, clock.Now())
	wait, heard := liftWait(f.state), f.heard
	f.mu.Unlock()
	f.poke()
	if wait <= 0 {
		return
	}
	t := clock.NewTicker(wait)
	defer t.Stop()
	select {
	case <-heard:
	case <-t.C():
	case <-ctx.Done():
	}
}

// verdict evaluates the fence at now and records the result.
func (f *selfFence) verdict(now time.Time) (fenced, changed bool, why string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fenced, why = fenceVerdict(f.state, now, f.after)
	changed = fenced != f.fenced
	f.fenced = fenced
	return fenced, changed, why
}

// peek evaluates the fence at now without recording the result.
func (f *selfFence) peek(now time.Time) (fenced bool, why string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fenceVerdict(f.state, now, f.after)
}

func (f *selfFence) isFenced() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fenced
}

func (f *selfFence) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// startHA starts the agent's HA parts on nc and r: liveness beats, beacon
// subscription, self-fence loop and health monitors. The returned function
// stops them all and waits for them; call it before r closes.
func (a *Agent) startHA(ctx context.Context, nc *nats.Conn, r *runner.Runner) (stop func(), err error) {
	a.fence.mu.Lock()
	a.fence.state.started = a.clock.Now()
	a.fence.mu.Unlock()
	sub, err := nc.Subscribe(wire.SubjectBeacon, a.onBeacon)
	if err != nil {
		return nil, fmt.Errorf("nodeagent %s: subscribe to %s: %w", a.cfg.Node, wire.SubjectBeacon, err)
	}
	a.mons = newMonitors(a.log, a.clock, r, a.kickHeartbeat)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { a.sendAlive(ctx, nc) })
	wg.Go(func() { a.fenceLoop(ctx, r) })
	return func() {
		if err := sub.Unsubscribe(); err != nil {
			a.log.Warn("unsubscribing from beacons", "err", err)
		}
		cancel()
		wg.Wait()
		a.mons.close()
	}, nil
}

// onBeacon takes a leader beacon: one from a leader older than the highest
// epoch this agent has obeyed is ignored (a deposed leader cannot keep a
// partition's resources running).
func (a *Agent) onBeacon(m *nats.Msg) {
	b, err := wire.DecodeBeacon(m.Data)
	if err != nil {
		a.log.Warn("malformed beacon", "bytes", len(m.Data), "err", err)
		return
	}
	if err := a.epochs.admit(b.Epoch); err != nil {
		if errors.Is(err, ErrStaleEpoch) {
			a.log.Debug("ignoring beacon", "leader", b.Leader, "err", err)
		} else {
			a.log.Warn("ignoring beacon", "leader", b.Leader, "err", err)
		}
		return
	}
	a.fence.beacon(b, a.clock.Now())
}

// fenceLoop evaluates the fence every fenceCheckInterval and on every
// beacon until ctx ends.
func (a *Agent) fenceLoop(ctx context.Context, r *runner.Runner) {
	ticker := a.clock.NewTicker(fenceCheckInterval)
	defer ticker.Stop()
	for {
		a.enforceFence(ctx, r)
		select {
		case <-ticker.C():
		case <-a.fence.wake:
		case <-ctx.Done():
			return
		}
	}
}

// enforceFence evaluates the fence now and, while fenced, kills every group
// resource that runs. It returns when they are dead (or the round failed;
// the next one tries again).
func (a *Agent) enforceFence(ctx context.Context, r *runner.Runner) {
	// Held from the verdict to the end of the kills: a start that lifted
	// the fence must not be killed by a verdict taken before it.
	a.fence.startMu.Lock()
	defer a.fence.startMu.Unlock()
	fenced, changed, why := a.fence.verdict(a.clock.Now())
	switch {
	case changed && fenced:
		a.log.Warn("self-fencing: stopping every group resource and starting none", "reason", why)
	case changed:
		a.log.Info("self-fence lifted: a quorate leader is heard")
	}
	if !fenced {
		return
	}
	// A fence must hold even while the agent shuts down.
	kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fenceKillTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, res := range r.GroupResources() {
		switch res.Status.State {
		case wire.StateRunning, wire.StateStarting, wire.StateMigrating:
		default:
			continue
		}
		wg.Go(func() {
			if _, err := r.Kill(kctx, res.Spec.ID, "self-fenced: "+why); err != nil {
				a.log.Error("self-fence: killing group resource", "id", res.Spec.ID, "err", err)
			}
		})
	}
	wg.Wait()
}

// selfFenceOrdered carries out the leader's self-fence command.
func (a *Agent) selfFenceOrdered(ctx context.Context, r *runner.Runner, epoch uint64) {
	a.fence.mu.Lock()
	a.fence.state.command(epoch)
	a.fence.mu.Unlock()
	a.enforceFence(ctx, r)
}

// startGroupResource starts a group resource for the leader of epoch
// (already admitted) unless the agent is self-fenced. The start itself ends
// a silence (see fenceState.groupStart); what still refuses it is an order
// of that leader (a beacon without quorum, the self-fence command) that no
// quorate beacon has lifted within liftWait.
func (a *Agent) startGroupResource(ctx context.Context, r *runner.Runner, spec wire.WorkloadSpec, epoch uint64) (wire.WorkloadStatus, error) {
	a.fence.groupStart(ctx, a.clock, epoch)
	a.fence.startMu.Lock()
	defer a.fence.startMu.Unlock()
	if fenced, why := a.fence.peek(a.clock.Now()); fenced {
		err := fmt.Errorf("%w: %s; group resources start again once a quorate leader beacon arrives (check the servers and this node's connection to NATS)", ErrSelfFenced, why)
		return wire.WorkloadStatus{ID: spec.ID, Name: spec.Name, State: wire.StateFailed, Error: err.Error(),
			Resources: spec.Resources, Group: spec.Group}, err
	}
	st, err := r.Start(ctx, spec)
	st.Group = spec.Group
	// Report at once: the group engine waits for this start.
	a.kickHeartbeat()
	return st, err
}

// onExit is the runner's exit hook: a group resource that exits is reported
// at once, so that failover reacts without waiting for the next heartbeat.
func (a *Agent) onExit(st wire.WorkloadStatus) {
	if st.Group != nil {
		a.kickHeartbeat()
	}
}

// kickHeartbeat asks for a heartbeat now (without measuring the machine
// again). It never blocks; kicks coalesce.
func (a *Agent) kickHeartbeat() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

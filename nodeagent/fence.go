package nodeagent

import (
	"errors"
	"fmt"
	"time"

	"github.com/batonhq/baton/wire"
)

// DefaultSelfFenceAfter is Config.SelfFenceAfter's default. It must be
// longer than a leader handover, during which no beacon comes: a new leader
// takes the lease at most the lease TTL (3 s by default) after the old one
// last renewed it, and then needs a beacon interval and some slack to be
// heard. Twice the default TTL keeps a handover from fencing every node of a
// healthy cluster. The groups engine's SelfFenceWait must exceed this plus
// the time to kill the resources, or a cut-off node might still run a group
// when the majority restarts it.
const DefaultSelfFenceAfter = 6 * time.Second

// ErrSelfFenced is returned for a start of a group resource while the agent
// is self-fenced.
var ErrSelfFenced = errors.New("self-fenced")

// fenceState is what the agent knows of the leader's word, the input of
// fenceVerdict. It does no I/O and takes the time of every event; the agent
// feeds it beacons, self-fence commands and starts of group resources, all
// already checked against the epochGuard.
type fenceState struct {
	// started is when the agent started: before its first quorate word it
	// counts the silence from there, so that a restarted agent does not
	// kill the group resources it re-adopted before a leader had the time
	// to be heard.
	started time.Time
	// lastQuorate is when the last quorate word arrived (zero: none yet):
	// a quorate beacon, or a start of a group resource.
	lastQuorate time.Time
	// quorateEpoch is the epoch of the leader that last said it is quorate.
	quorateEpoch uint64
	// order is why the leader told this agent to fence (a beacon without
	// quorum, the self-fence command) since its last quorate beacon; "" if
	// it did not. orderEpoch is that leader's epoch.
	order      string
	orderEpoch uint64
	// interval is how often the leader said, in its last beacon, that it
	// sends them.
	interval time.Duration
}

// beacon records a beacon. A beacon without quorum fences at once only if
// its leader said it was quorate before: a leader that has just taken over
// reports no quorum until it has heard the nodes, and fencing every node on
// a handover would stop every group of a healthy cluster. Such a leader is
// covered by the silence rule (no quorate word for SelfFenceAfter).
func (s *fenceState) beacon(b wire.Beacon, now time.Time) {
	s.interval = time.Duration(b.IntervalMS) * time.Millisecond
	switch {
	case b.Quorate:
		s.quorate(b.Epoch, now)
	case s.quorateEpoch != 0 && b.Epoch <= s.quorateEpoch:
		s.order = fmt.Sprintf("leader %s (epoch %d) reports that its partition has no quorum", b.Leader, b.Epoch)
		s.orderEpoch = b.Epoch
	}
}

// groupStart records a start of a group resource. The group engine starts
// groups only while its partition is quorate, so the start ends a silence
// like a quorate beacon: that matters when a new leader becomes quorate and
// starts groups before its first quorate beacon is heard. It lifts an order
// only of an older leader: its own leader's order may have been sent after
// the start (the two travel apart), and only a quorate beacon is sure to
// be later.
func (s *fenceState) groupStart(epoch uint64, now time.Time) {
	s.lastQuorate = now
	s.quorateEpoch = max(s.quorateEpoch, epoch)
	if epoch > s.orderEpoch {
		s.order = ""
	}
}

// liftWaitBeacons is how many beacon intervals a group start that an order
// holds back waits for a quorate beacon: a busy leader's beacons come late.
const liftWaitBeacons = 4

// liftWait is how long a group start, just recorded, that an order of its
// own leader holds back should wait for a quorate beacon before it is
// refused; 0 if no order holds it back. The leader starts groups only
// while quorate, but whether its order (a beacon without quorum, the
// self-fence command) was sent before or after the start only a quorate
// beacon tells, the two travel apart. A leader that has just regained
// quorum starts groups at once and lifts its order with its next beacon:
// refused, those starts would fail their resources there, each counted
// against the node's failure threshold.
func liftWait(s fenceState) time.Duration {
	if s.order == "" {
		return 0
	}
	return liftWaitBeacons * s.interval
}

func (s *fenceState) quorate(epoch uint64, now time.Time) {
	s.lastQuorate = now
	s.quorateEpoch = max(s.quorateEpoch, epoch)
	s.order = ""
}

// command records a self-fence command.
func (s *fenceState) command(epoch uint64) {
	s.order = fmt.Sprintf("the leader (epoch %d) ordered it", epoch)
	s.orderEpoch = epoch
}

// fenceVerdict decides whether at now the agent must hold its group
// resources stopped, and why: yes if the leader ordered it since the last
// quorate beacon, or if no quorate beacon has come for after (counted from
// the agent's start while none has come). Only a quorate word lifts it.
func fenceVerdict(s fenceState, now time.Time, after time.Duration) (fenced bool, why string) {
	if s.order != "" {
		return true, s.order
	}
	since, what := s.lastQuorate, "no quorate beacon from a leader"
	if !s.started.IsZero() && s.started.After(since) {
		since, what = s.started, "no quorate beacon from a leader since the agent started"
	}
	if silent := now.Sub(since); silent >= after {
		return true, fmt.Sprintf("%s for %v (limit %v)", what, silent.Round(time.Millisecond), after)
	}
	return false, ""
}

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
// feeds it beacons (already checked against the epochGuard) and self-fence
// commands.
type fenceState struct {
	// started is when the agent started: before its first quorate beacon it
	// counts the silence from there, so that a restarted agent does not
	// kill the group resources it re-adopted before a leader had the time
	// to be heard.
	started time.Time
	// lastQuorate is when the last quorate beacon arrived (zero: none yet).
	lastQuorate time.Time
	// order is why the leader told this agent to fence (a beacon without
	// quorum, the self-fence command) since lastQuorate; "" if it did not.
	order string
}

// beacon records a beacon that passed the epoch check.
func (s *fenceState) beacon(b wire.Beacon, now time.Time) {
	if b.Quorate {
		s.lastQuorate = now
		s.order = ""
		return
	}
	s.order = fmt.Sprintf("leader %s (epoch %d) reports that its partition has no quorum", b.Leader, b.Epoch)
}

// command records a self-fence command that passed the epoch check.
func (s *fenceState) command(epoch uint64) {
	s.order = fmt.Sprintf("the leader (epoch %d) ordered it", epoch)
}

// fenceVerdict decides whether at now the agent must hold its group
// resources stopped, and why: yes if the leader ordered it since the last
// quorate beacon, or if no quorate beacon has come for after (counted from
// the agent's start while none has come). Only a quorate beacon lifts it.
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

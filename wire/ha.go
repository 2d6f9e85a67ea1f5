package wire

import (
	"fmt"
	"time"
)

// The high-availability part of the protocol: liveness beats, the leader's
// beacon, the direct probe, and resource-group resources run as workloads.
//
//	agent ──alive (every 250 ms)──▶ leader        membership: suspect after 3 missed
//	leader ──probe (TCP, 300 ms)──▶ agent          a failed probe is the evidence for "down"
//	leader ──beacon (every 250 ms)──▶ all agents  an agent that hears no quorate beacon
//	                                              for SelfFenceAfter stops its group resources
//	leader ──cmd self-fence──▶ agent              stop every group resource now

// AliveWildcard matches the liveness beats of all nodes.
const AliveWildcard = subjectPrefix + "node.*.alive"

// SubjectAlive is the subject a node publishes its small, frequent liveness
// beats on. They feed failure detection only; the full report (headroom,
// workloads) stays on the slower heartbeat.
func SubjectAlive(node string) string { return subjectPrefix + "node." + node + ".alive" }

// SubjectBeacon is the subject the leading server publishes its beacon on.
const SubjectBeacon = subjectPrefix + "leader.beacon"

// OpSelfFence asks an agent to stop every group resource it runs at once and
// to start none until a quorate beacon arrives. Idempotent.
const OpSelfFence = "self-fence"

// Alive is a liveness beat.
type Alive struct {
	V          int    `json:"v"`
	Node       string `json:"node"`
	Seq        uint64 `json:"seq"`
	IntervalMS int64  `json:"interval_ms"`
}

// Beacon is the leader's periodic word to every agent: who leads with which
// epoch, and whether its partition is quorate. An agent that stops hearing a
// quorate beacon self-fences its group resources.
type Beacon struct {
	V       int       `json:"v"`
	Leader  string    `json:"leader"`
	Epoch   uint64    `json:"epoch"`
	Quorate bool      `json:"quorate"`
	SentAt  time.Time `json:"sent_at"`
	// IntervalMS is how often the leader sends it.
	IntervalMS int64 `json:"interval_ms"`
}

// ProbeGreeting is the line an agent's probe listener writes to every
// connection ("baton-agent NODE\n"); the server's probe succeeds only when it
// reads the expected node's greeting in time.
func ProbeGreeting(node string) string { return "baton-agent " + node + "\n" }

// MonitorSpec is a health check an agent runs against a group resource:
// Command is run every Interval; a non-zero exit or a run longer than
// Timeout is a failure.
type MonitorSpec struct {
	Command    []string `json:"command"`
	IntervalMS int64    `json:"interval_ms"`
	TimeoutMS  int64    `json:"timeout_ms"`
}

// GroupRef marks a workload as a resource of a resource group. Such
// workloads belong to the group engine, not to the workload reconciler, and
// are the ones an agent stops when it self-fences.
type GroupRef struct {
	Group    string `json:"group"`
	Resource string `json:"resource"`
}

// DecodeAlive parses and validates a liveness beat.
func DecodeAlive(data []byte) (Alive, error) {
	var a Alive
	if err := decode(data, &a, &a.V); err != nil {
		return Alive{}, fmt.Errorf("alive: %w", err)
	}
	if err := ValidNodeName(a.Node); err != nil {
		return Alive{}, fmt.Errorf("alive: %w: %v", ErrMalformed, err)
	}
	if a.IntervalMS < 0 {
		return Alive{}, fmt.Errorf("alive from %q: %w: negative interval", a.Node, ErrMalformed)
	}
	return a, nil
}

// DecodeBeacon parses and validates a leader beacon.
func DecodeBeacon(data []byte) (Beacon, error) {
	var b Beacon
	if err := decode(data, &b, &b.V); err != nil {
		return Beacon{}, fmt.Errorf("beacon: %w", err)
	}
	if b.Leader == "" || b.IntervalMS <= 0 {
		return Beacon{}, fmt.Errorf("beacon: %w: needs a leader and a positive interval", ErrMalformed)
	}
	return b, nil
}

func validateMonitor(m *MonitorSpec) error {
	if m == nil {
		return nil
	}
	if len(m.Command) == 0 || m.IntervalMS <= 0 || m.TimeoutMS <= 0 {
		return fmt.Errorf("%w: a monitor needs a command, a positive interval and a positive timeout", ErrMalformed)
	}
	return nil
}

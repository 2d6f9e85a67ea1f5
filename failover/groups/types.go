package groups

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors of Validate and Config.Validate.
var (
	// ErrInvalidGroup is returned (wrapped, with what is wrong) for a group
	// description that cannot be run.
	ErrInvalidGroup = errors.New("groups: invalid group")
	// ErrBadConfig is returned (wrapped) by Config.Validate.
	ErrBadConfig = errors.New("groups: bad configuration")
)

// Kind says which adapter runs a resource. The engine never looks inside a
// resource: it only orders starts and stops and counts failures.
type Kind string

// Resource kinds known today; adapters may add others.
const (
	Process   Kind = "process"   // a process run by the node agent
	Container Kind = "container" // an OCI container (runc)
	IP        Kind = "ip"        // a floating IP address
	Script    Kind = "script"    // an LSB/OCF-style script with start, stop, monitor
)

// Monitor says how the node agent checks a started resource and how many
// failures are restarted in place before the group fails over.
type Monitor struct {
	Interval time.Duration `json:"interval,omitempty"` // between checks; zero: the adapter's default
	Timeout  time.Duration `json:"timeout,omitempty"`  // a check slower than this failed
	// Restarts is how many failures of this resource are restarted in place
	// on the same node before the group fails over to another; zero fails
	// over on the first failure.
	Restarts int `json:"restarts,omitempty"`
}

// Resource is one member of a group. Spec is opaque to the engine: the
// adapter for Kind interprets it (a command line, an image, an address...).
type Resource struct {
	Name    string          `json:"name"`
	Kind    Kind            `json:"kind"`
	Spec    json.RawMessage `json:"spec,omitempty"`
	Monitor Monitor         `json:"monitor,omitzero"`
}

// Failback says whether a group returns by itself to a more preferred node
// when that node comes back.
type Failback string

// Failback modes.
const (
	FailbackManual Failback = "manual" // the default: stay until moved
	FailbackAuto   Failback = "auto"
)

// Group is a set of resources that run together on one node, started in
// order and stopped in reverse.
type Group struct {
	Name      string     `json:"name"`
	Resources []Resource `json:"resources"`
	// Nodes are the nodes allowed to run the group, most preferred first;
	// empty allows every node, in name order.
	Nodes    []string `json:"nodes,omitempty"`
	Failback Failback `json:"failback,omitempty"`
	// FailureThreshold is how many failures on one node keep the group off
	// that node until its failures are reset (Pacemaker's
	// migration-threshold); zero takes Config.FailureThreshold.
	FailureThreshold int `json:"failureThreshold,omitempty"`
	// FailureTimeout forgets a node's failures (and the restarts in place
	// counted there) after this long without a new one; zero keeps them
	// until reset (Pacemaker's failure-timeout).
	FailureTimeout time.Duration `json:"failureTimeout,omitempty"`
}

// Validate reports what is wrong with g, if anything.
func Validate(g Group) error {
	if g.Name == "" {
		return fmt.Errorf("%w: a group needs a name", ErrInvalidGroup)
	}
	if len(g.Resources) == 0 {
		return fmt.Errorf("%w: group %q has no resources; give at least one", ErrInvalidGroup, g.Name)
	}
	seen := map[string]bool{}
	for i, r := range g.Resources {
		if r.Name == "" {
			return fmt.Errorf("%w: group %q: resource %d has no name", ErrInvalidGroup, g.Name, i)
		}
		if seen[r.Name] {
			return fmt.Errorf("%w: group %q: resource name %q is used twice", ErrInvalidGroup, g.Name, r.Name)
		}
		seen[r.Name] = true
		if r.Monitor.Restarts < 0 {
			return fmt.Errorf("%w: group %q: resource %q: restarts %d is negative", ErrInvalidGroup, g.Name, r.Name, r.Monitor.Restarts)
		}
	}
	if g.Failback != "" && g.Failback != FailbackManual && g.Failback != FailbackAuto {
		return fmt.Errorf("%w: group %q: failback %q is neither manual nor auto", ErrInvalidGroup, g.Name, g.Failback)
	}
	if g.FailureTimeout < 0 {
		return fmt.Errorf("%w: group %q: failure timeout %s is negative", ErrInvalidGroup, g.Name, g.FailureTimeout)
	}
	if g.FailureThreshold < 0 {
		return fmt.Errorf("%w: group %q: failure threshold %d is negative", ErrInvalidGroup, g.Name, g.FailureThreshold)
	}
	return nil
}

// EventKind names an input to the engine.
type EventKind string

// Events. Node events come from membership and the quorum tracker, fence
// events from the fencing adapter, resource events from node agents, and
// the rest from users and the clock.
const (
	NodeUp          EventKind = "node-up"        // Node is running (membership) and may host groups
	NodeSuspect     EventKind = "node-suspect"   // Node missed heartbeats (not yet down): it keeps its groups but gets no new ones
	NodeLeaving     EventKind = "node-leaving"   // Node announced an orderly leave: move its groups off, no fence
	NodeDown        EventKind = "node-down"      // Node is down on evidence; its groups are lost until it is fenced
	Fenced          EventKind = "fenced"         // a fence device confirmed Node off (Level says which)
	FenceFailed     EventKind = "fence-failed"   // fencing Node at Level failed
	QuorumGained    EventKind = "quorum-gained"  // this partition is quorate
	QuorumLost      EventKind = "quorum-lost"    // this partition lost quorum
	ResourceStarted EventKind = "started"        // Resource of Group started on Node
	ResourceStopped EventKind = "stopped"        // Resource of Group stopped on Node
	ResourceFailed  EventKind = "failed"         // Resource of Group failed to start, crashed, or failed to stop on Node
	MonitorFailed   EventKind = "monitor-failed" // the monitor of Resource of Group failed on Node
	CreateGroup     EventKind = "create"         // user: create Spec
	DeleteGroup     EventKind = "delete"         // user: stop and remove Group
	MoveGroup       EventKind = "move"           // user: move Group to Node (empty Node: clear the user's choice)
	ResetFailures   EventKind = "reset-failures" // user: forget Group's failures on Node (every node if empty)
	FenceNode       EventKind = "fence-node"     // user: fence Node now (baton node fence)
	Tick            EventKind = "tick"           // time passes (self-fence deadlines, fence retries)
)

// Event is one input. At is the time it happened; every event carries it so
// that the engine never reads a clock.
type Event struct {
	Kind     EventKind
	At       time.Time
	Node     string
	Group    string
	Resource string
	Level    int    // fence level for Fenced and FenceFailed
	Spec     *Group // for CreateGroup
	Reason   string // optional detail from the reporter, carried into the log
}

// ActionKind names an output of the engine.
type ActionKind string

// Actions. Each is plain data for an adapter to carry out and report back.
const (
	// StartResource: start Resource (Spec) of Group on Node, then monitor it
	// as Spec.Monitor says; report started, failed or monitor-failed.
	StartResource ActionKind = "start"
	// StopResource: stop Resource of Group on Node; report stopped or failed.
	StopResource ActionKind = "stop"
	// Fence: power Node off with the Device of fence Level; report fenced or
	// fence-failed with the same Level.
	Fence ActionKind = "fence"
	// SelfFence: this partition lost quorum; every resource on Node must be
	// stopped by Deadline (in reverse order if time allows, killed if not),
	// and nothing started there until quorum returns.
	SelfFence ActionKind = "self-fence"
	// SetState: Group is now in State on Node (for status and the event log).
	SetState ActionKind = "state"
)

// Action is one output. Reason says why, for the event log.
type Action struct {
	Kind     ActionKind
	Group    string
	Resource string
	Spec     *Resource // the resource for StartResource and StopResource
	Node     string
	Level    int    // Fence: index into the node's fence levels
	Device   string // Fence: the device of that level
	Deadline time.Time
	State    State // SetState
	Reason   string
}

func (a Action) String() string {
	switch a.Kind {
	case StartResource, StopResource:
		return fmt.Sprintf("%s %s/%s on %s (%s)", a.Kind, a.Group, a.Resource, a.Node, a.Reason)
	case Fence:
		return fmt.Sprintf("fence %s level %d %s (%s)", a.Node, a.Level, a.Device, a.Reason)
	case SelfFence:
		return fmt.Sprintf("self-fence %s by %s (%s)", a.Node, a.Deadline.Format("15:04:05.000"), a.Reason)
	case SetState:
		on := ""
		if a.Node != "" {
			on = " on " + a.Node
		}
		return fmt.Sprintf("group %s %s%s (%s)", a.Group, a.State, on, a.Reason)
	}
	return fmt.Sprintf("%s %s %s (%s)", a.Kind, a.Group, a.Node, a.Reason)
}

// State is a group's state.
type State string

// Group states.
const (
	Stopped    State = "stopped"    // runs nowhere: no eligible node
	Starting   State = "starting"   // resources are being started in order
	Running    State = "running"    // every resource started
	Stopping   State = "stopping"   // resources are being stopped in reverse (move, restart, failover, delete, lost quorum)
	Recovering State = "recovering" // its node is down: waiting for the fence or the self-fence deadline
	Blocked    State = "blocked"    // stopped because this partition has no quorum
	Deleted    State = "deleted"    // stopped and removed
)

// ResourceState is what the engine knows of one resource on the group's node.
type ResourceState string

// Resource states.
const (
	ResStopped  ResourceState = "stopped"
	ResStarting ResourceState = "starting"
	ResStarted  ResourceState = "started"
	ResStopping ResourceState = "stopping"
	ResFailed   ResourceState = "failed"  // failed; must be stopped before it starts again
	ResUnknown  ResourceState = "unknown" // its node is down: it may still run until the node is fenced
)

func (ev Event) String() string {
	s := string(ev.Kind)
	for _, f := range []string{ev.Group, ev.Resource, ev.Node} {
		if f != "" {
			s += " " + f
		}
	}
	if ev.Kind == Fenced || ev.Kind == FenceFailed {
		s += fmt.Sprintf(" level %d", ev.Level)
	}
	if ev.Reason != "" {
		s += " (" + ev.Reason + ")"
	}
	return s
}

package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Version is the protocol version carried in every message's "v" field.
const Version = 1

// subjectPrefix is the root of every Baton subject; it embeds the version so
// that two protocol generations can share one NATS deployment.
const subjectPrefix = "baton.v1."

// HeartbeatWildcard matches the heartbeats of all nodes.
const HeartbeatWildcard = subjectPrefix + "node.*.heartbeat"

// LeaveWildcard matches the leave notices of all nodes.
const LeaveWildcard = subjectPrefix + "node.*.leave"

// SubjectHeartbeat is the subject a node publishes its heartbeats on.
func SubjectHeartbeat(node string) string { return subjectPrefix + "node." + node + ".heartbeat" }

// SubjectLeave is the subject a node announces an orderly shutdown on.
func SubjectLeave(node string) string { return subjectPrefix + "node." + node + ".leave" }

// SubjectCommand is the request/reply subject a node's agent serves commands on.
func SubjectCommand(node string) string { return subjectPrefix + "node." + node + ".cmd" }

// ErrMalformed is returned by the decoders for messages that are not valid
// Baton messages of this protocol version.
var ErrMalformed = errors.New("wire: malformed message")

var nodeNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}$`)

// ValidNodeName reports whether name can be used as a node name: it becomes a
// NATS subject token, so dots, wildcards and spaces are not allowed.
func ValidNodeName(name string) error {
	if !nodeNameRE.MatchString(name) {
		return fmt.Errorf("node name %q is invalid: use 1-63 letters, digits, '-' or '_', starting with a letter or digit", name)
	}
	return nil
}

// Resources is an amount of CPU and memory (requests, capacity or headroom).
type Resources struct {
	CPUMillis int64 `json:"cpu_millis"`
	MemoryMB  int64 `json:"memory_mb"`
}

// Headroom is what a node measured as free at the time of a heartbeat.
type Headroom struct {
	CPUMillis  int64   `json:"cpu_millis"`  // idle CPU: cores × 1000 × (1 - utilisation)
	MemoryMB   int64   `json:"memory_mb"`   // available memory
	DiskMB     int64   `json:"disk_mb"`     // free space of the agent's data dir
	CPUPercent float64 `json:"cpu_percent"` // utilisation over the last interval, 0-100
	Load1      float64 `json:"load1"`       // load averages
	Load5      float64 `json:"load5"`
	Load15     float64 `json:"load15"`
}

// Capacity is a node's total size.
type Capacity struct {
	CPUs      int   `json:"cpus"`
	CPUMillis int64 `json:"cpu_millis"`
	MemoryMB  int64 `json:"memory_mb"`
	DiskMB    int64 `json:"disk_mb"`
}

// Workload states as agents and the server report them.
const (
	StatePending  = "pending"  // accepted by the server, not yet sent to its node
	StateStarting = "starting" // sent to its node, not yet confirmed running
	StateRunning  = "running"
	StateStopped  = "stopped" // exited with status 0 or stopped on request
	StateFailed   = "failed"  // exited non-zero, was killed, or could not start
)

// WorkloadSpec is what an agent needs to run a workload of kind process.
type WorkloadSpec struct {
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	Command   []string          `json:"command"`
	Env       map[string]string `json:"env,omitempty"`
	Workdir   string            `json:"workdir,omitempty"`
	Resources Resources         `json:"resources"`
	// Group is set for a resource of a resource group (see GroupRef).
	Group *GroupRef `json:"group,omitempty"`
	// Monitor, for a group resource, is the health check the agent runs.
	Monitor *MonitorSpec `json:"monitor,omitempty"`
}

// WorkloadStatus is an agent's view of one of its workloads.
type WorkloadStatus struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	State     string    `json:"state"`
	HostPID   int       `json:"host_pid,omitempty"`
	ExitCode  *int      `json:"exit_code,omitempty"`
	Error     string    `json:"error,omitempty"`
	StartedAt time.Time `json:"started_at,omitzero"`
	Resources Resources `json:"resources"`
	RSSBytes  int64     `json:"rss_bytes,omitempty"` // resident memory of the workload's processes
	Group     *GroupRef `json:"group,omitempty"`
	// MonitorFailures counts the failed health checks of this run of the
	// workload (it starts at 0 with every start); MonitorError is the last.
	MonitorFailures int    `json:"monitor_failures,omitempty"`
	MonitorError    string `json:"monitor_error,omitempty"`
}

// Heartbeat is an agent's periodic report: who it is, what it measured, what
// it runs.
type Heartbeat struct {
	V          int               `json:"v"`
	Node       string            `json:"node"`
	Seq        uint64            `json:"seq"`
	SentAt     time.Time         `json:"sent_at"`
	IntervalMS int64             `json:"interval_ms"`
	Labels     map[string]string `json:"labels,omitempty"`
	Capacity   Capacity          `json:"capacity"`
	Headroom   Headroom          `json:"headroom"`
	Workloads  []WorkloadStatus  `json:"workloads"`
	Features   *NodeFeatures     `json:"features,omitempty"`
	// AliveIntervalMS is non-zero when the node also sends liveness beats
	// (SubjectAlive) at that interval: failure detection then follows those,
	// not this slower report.
	AliveIntervalMS int64 `json:"alive_interval_ms,omitempty"`
	// ProbeAddr is the host:port of the agent's probe listener.
	ProbeAddr string `json:"probe_addr,omitempty"`
	// SelfFenced is true while the agent holds its group resources stopped
	// because it lost the leader or quorum.
	SelfFenced bool `json:"self_fenced,omitempty"`
}

// Leave announces that an agent is shutting down in order.
type Leave struct {
	V    int    `json:"v"`
	Node string `json:"node"`
}

// Command operations.
const (
	OpStart = "start" // start Workload; idempotent by Workload.ID
	OpStop  = "stop"  // stop the workload ID and forget it; idempotent
)

// Command is a request from the server to one agent.
//
// Epoch is the sending server's leadership epoch (its fencing token, see
// scheduler/lease): an agent refuses a command whose epoch is lower than the
// highest it has seen, so a deposed leader can no longer act.
type Command struct {
	V        int           `json:"v"`
	Epoch    uint64        `json:"epoch,omitempty"`
	Op       string        `json:"op"`
	ID       string        `json:"id,omitempty"`       // OpStop
	Workload *WorkloadSpec `json:"workload,omitempty"` // OpStart
	// Migration is the body of the migration operations (OpMigrate*) but
	// OpMigrateReceive, whose body is Chunk.
	Migration *MigrationCmd `json:"migration,omitempty"`
	Chunk     *FileChunk    `json:"chunk,omitempty"`
}

// CommandReply answers a Command. Error is empty on success.
type CommandReply struct {
	V         int             `json:"v"`
	Error     string          `json:"error,omitempty"`
	Status    *WorkloadStatus `json:"status,omitempty"`
	Migration *MigrationReply `json:"migration,omitempty"`
}

func decode(data []byte, v any, version *int) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if *version != Version {
		return fmt.Errorf("%w: protocol version %d, want %d", ErrMalformed, *version, Version)
	}
	return nil
}

// DecodeHeartbeat parses and validates a heartbeat.
func DecodeHeartbeat(data []byte) (Heartbeat, error) {
	var hb Heartbeat
	if err := decode(data, &hb, &hb.V); err != nil {
		return Heartbeat{}, fmt.Errorf("heartbeat: %w", err)
	}
	if err := ValidNodeName(hb.Node); err != nil {
		return Heartbeat{}, fmt.Errorf("heartbeat: %w: %v", ErrMalformed, err)
	}
	for _, w := range hb.Workloads {
		if w.ID == "" {
			return Heartbeat{}, fmt.Errorf("heartbeat from %q: %w: workload without id", hb.Node, ErrMalformed)
		}
	}
	return hb, nil
}

// DecodeLeave parses and validates a leave notice.
func DecodeLeave(data []byte) (Leave, error) {
	var l Leave
	if err := decode(data, &l, &l.V); err != nil {
		return Leave{}, fmt.Errorf("leave: %w", err)
	}
	if err := ValidNodeName(l.Node); err != nil {
		return Leave{}, fmt.Errorf("leave: %w: %v", ErrMalformed, err)
	}
	return l, nil
}

// DecodeCommand parses and validates a command.
func DecodeCommand(data []byte) (Command, error) {
	var c Command
	if err := decode(data, &c, &c.V); err != nil {
		return Command{}, fmt.Errorf("command: %w", err)
	}
	switch c.Op {
	case OpStart:
		if c.Workload == nil || c.Workload.ID == "" || len(c.Workload.Command) == 0 {
			return Command{}, fmt.Errorf("command start: %w: needs a workload with an id and a command", ErrMalformed)
		}
		if err := validateMonitor(c.Workload.Monitor); err != nil {
			return Command{}, fmt.Errorf("command start %s: %w", c.Workload.ID, err)
		}
	case OpStop:
		if c.ID == "" {
			return Command{}, fmt.Errorf("command stop: %w: needs an id", ErrMalformed)
		}
	case OpSelfFence:
	case OpMigratePrepare, OpMigrateDump, OpMigrateSendImages, OpMigrateRestore, OpMigrateWaitPages, OpMigrateCommit, OpMigrateAbort:
		if err := validateMigrationCmd(c.Op, c.Migration); err != nil {
			return Command{}, err
		}
	case OpMigrateReceive:
		if err := validateChunk(c.Chunk); err != nil {
			return Command{}, err
		}
	default:
		return Command{}, fmt.Errorf("command: %w: unknown op %q", ErrMalformed, c.Op)
	}
	return c, nil
}

// DecodeCommandReply parses and validates a command reply.
func DecodeCommandReply(data []byte) (CommandReply, error) {
	var r CommandReply
	if err := decode(data, &r, &r.V); err != nil {
		return CommandReply{}, fmt.Errorf("command reply: %w", err)
	}
	return r, nil
}

// Encode marshals a message. Messages are plain structs, so this cannot fail
// for the types of this package; a failure is a programming error.
func Encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("wire: encoding %T: %v", v, err))
	}
	return b
}

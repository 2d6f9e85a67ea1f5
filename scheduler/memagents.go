package scheduler

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/batonhq/baton/wire"
)

// MemoryAgents is the in-memory twin of NATSAgents for tests: it runs no
// processes, records every command, and reports what each node "runs" as a
// heartbeat would.
type MemoryAgents struct {
	mu      sync.Mutex
	nextPID int
	running map[string]map[string]wire.WorkloadStatus // node → id → status
	// Refuse, when set, makes Start fail as an agent would (e.g. program not found).
	Refuse string
	// Log records commands as "start NODE ID" / "stop NODE ID" / "OP NODE"
	// (commit and abort: "OP NODE ROLE").
	Log []string
	// FailMigration makes the named migration operation fail (e.g.
	// wire.OpMigrateRestore), as an agent would.
	FailMigration string
	// HoldPrepare, when set, makes prepare wait until it is closed, so a
	// test can look at a migration in flight.
	HoldPrepare chan struct{}
	// HoldStart, when set (under no concurrent Start), makes a start of a
	// workload id it lists wait until that channel is closed, so a test can
	// look at a start in flight.
	HoldStart map[string]chan struct{}
}

// NewMemoryAgents returns agents that run nothing yet.
func NewMemoryAgents() *MemoryAgents {
	return &MemoryAgents{nextPID: 1000, running: map[string]map[string]wire.WorkloadStatus{}}
}

// Start implements AgentClient; idempotent by id like a real agent, except
// that a group resource whose run ended gets a new run (as the runner does).
func (m *MemoryAgents) Start(_ context.Context, node string, spec wire.WorkloadSpec) (wire.WorkloadStatus, error) {
	m.mu.Lock()
	hold := m.HoldStart[spec.ID]
	m.mu.Unlock()
	if hold != nil {
		<-hold
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.Log = append(m.Log, "start "+node+" "+spec.ID)
	if m.Refuse != "" {
		return wire.WorkloadStatus{}, fmt.Errorf("%w: node %s: %s", ErrAgent, node, m.Refuse)
	}
	if m.running[node] == nil {
		m.running[node] = map[string]wire.WorkloadStatus{}
	}
	if st, ok := m.running[node][spec.ID]; ok && (spec.Group == nil || !exited(st.State)) {
		return st, nil
	}
	m.nextPID++
	st := wire.WorkloadStatus{ID: spec.ID, Name: spec.Name, State: wire.StateRunning, HostPID: m.nextPID, Resources: spec.Resources,
		Group: spec.Group, StartedAt: time.Unix(int64(m.nextPID), 0).UTC()}
	m.running[node][spec.ID] = st
	return st, nil
}

// Stop implements AgentClient; idempotent.
func (m *MemoryAgents) Stop(_ context.Context, node, id string) (wire.WorkloadStatus, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.Log = append(m.Log, "stop "+node+" "+id)
	st := m.running[node][id]
	delete(m.running[node], id)
	st.ID, st.State = id, wire.StateStopped
	return st, nil
}

// SelfFence implements SelfFencer: the node's group resources stop.
func (m *MemoryAgents) SelfFence(_ context.Context, node string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.Log = append(m.Log, "self-fence "+node)
	for id, st := range m.running[node] {
		if st.Group != nil {
			delete(m.running[node], id)
		}
	}
	return nil
}

// Update changes what a node "runs" as a real process would by itself
// (exit, a failed monitor): f gets the status and returns the new one.
func (m *MemoryAgents) Update(node, id string, f func(wire.WorkloadStatus) wire.WorkloadStatus) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if st, ok := m.running[node][id]; ok {
		m.running[node][id] = f(st)
	}
}

// Migrate implements MigrationAgents: it moves the workload between the
// twin's nodes the way real agents would, the source copy "frozen" (kept)
// until commit or abort.
func (m *MemoryAgents) Migrate(_ context.Context, node, op string, cmd wire.MigrationCmd) (wire.MigrationReply, error) {
	if hold := m.HoldPrepare; hold != nil && op == wire.OpMigratePrepare {
		<-hold
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if cmd.Role != "" {
		m.Log = append(m.Log, op+" "+node+" "+cmd.Role)
	} else {
		m.Log = append(m.Log, op+" "+node)
	}
	if op == m.FailMigration {
		return wire.MigrationReply{}, fmt.Errorf("%w: node %s: %s: injected failure", ErrAgent, node, op)
	}
	id := cmd.Workload.ID
	switch op {
	case wire.OpMigratePrepare:
		return wire.MigrationReply{PageServer: "127.0.0.1:1"}, nil
	case wire.OpMigrateDump:
		st := m.running[cmd.Source][id]
		st.State = wire.StateMigrating
		m.running[cmd.Source][id] = st
		if cmd.Mode == "post-copy" {
			return wire.MigrationReply{PageServer: "127.0.0.1:2"}, nil
		}
		return wire.MigrationReply{Bytes: 1 << 20}, nil
	case wire.OpMigrateRestore:
		if m.running[cmd.Target] == nil {
			m.running[cmd.Target] = map[string]wire.WorkloadStatus{}
		}
		m.nextPID++
		m.running[cmd.Target][id] = wire.WorkloadStatus{ID: id, Name: cmd.Workload.Name, State: wire.StateRunning, HostPID: m.nextPID}
		return wire.MigrationReply{PID: m.nextPID}, nil
	case wire.OpMigrateWaitPages:
		return wire.MigrationReply{Bytes: 1 << 20}, nil
	case wire.OpMigrateCommit:
		if cmd.Role == wire.RoleSource {
			delete(m.running[cmd.Source], id)
		}
	case wire.OpMigrateAbort:
		if cmd.Role == wire.RoleTarget && cmd.KillTarget {
			delete(m.running[cmd.Target], id)
		}
		if cmd.Role == wire.RoleSource {
			if st, ok := m.running[cmd.Source][id]; ok {
				st.State = wire.StateRunning
				m.running[cmd.Source][id] = st
			}
		}
	}
	return wire.MigrationReply{}, nil
}

// Running lists what node runs, as its heartbeat would report it.
func (m *MemoryAgents) Running(node string) []wire.WorkloadStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []wire.WorkloadStatus{}
	for _, st := range m.running[node] {
		out = append(out, st)
	}
	return out
}

// Commands returns a copy of the command log.
func (m *MemoryAgents) Commands() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.Log...)
}

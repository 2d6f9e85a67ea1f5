package store

import (
	"context"
	"errors"
	"time"

	"github.com/batonhq/baton/wire"
)

// ErrNotFound is returned when no workload has the given id.
var ErrNotFound = errors.New("store: workload not found")

// Desired states of a workload.
const (
	DesiredRunning = "running"
	DesiredDeleted = "deleted" // stop it, then forget it
)

// Constraints restrict where a workload may be placed (the API's form).
type Constraints struct {
	Nodes        []string          `json:"nodes,omitempty"`
	AvoidNodes   []string          `json:"avoid_nodes,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	AntiAffinity []string          `json:"anti_affinity,omitempty"`
}

// Workload is one workload's record: the user's request, the placement, and
// the last observed state.
type Workload struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Kind        string            `json:"kind"`
	Command     []string          `json:"command"`
	Env         map[string]string `json:"env,omitempty"`
	Workdir     string            `json:"workdir,omitempty"`
	Resources   wire.Resources    `json:"resources"`
	Constraints Constraints       `json:"constraints"`
	Strategy    string            `json:"strategy,omitempty"`
	// Priority: the higher, the costlier to disturb; the rebalancer moves
	// workloads of lower priority first.
	Priority int `json:"priority,omitempty"`

	Desired  string `json:"desired"`
	Node     string `json:"node"`
	State    string `json:"state"`
	HostPID  int    `json:"host_pid,omitempty"`
	ExitCode *int   `json:"exit_code,omitempty"`
	Error    string `json:"error,omitempty"`
	// Migration is the id of the migration under way, if any, and
	// MigrationTarget where it goes: both nodes may report the workload then.
	Migration       string    `json:"migration,omitempty"`
	MigrationTarget string    `json:"migration_target,omitempty"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
}

// Spec is the part of the record an agent needs to run the workload.
func (w Workload) Spec() wire.WorkloadSpec {
	return wire.WorkloadSpec{ID: w.ID, Name: w.Name, Command: w.Command, Env: w.Env, Workdir: w.Workdir, Resources: w.Resources}
}

// Store persists workload records.
type Store interface {
	// Put creates or replaces the record w.ID.
	Put(ctx context.Context, w Workload) error
	// Delete removes the record id; deleting a missing record is not an error.
	Delete(ctx context.Context, id string) error
	// List returns every record (in no particular order).
	List(ctx context.Context) ([]Workload, error)
}

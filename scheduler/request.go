package scheduler

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/batonhq/baton/placement"
	"github.com/batonhq/baton/scheduler/store"
	"github.com/batonhq/baton/wire"
)

// Sentinel errors of the scheduler; the REST API maps them to status codes.
var (
	// ErrInvalid marks a request that is malformed or out of range.
	ErrInvalid = errors.New("invalid request")
	// ErrNotFound marks an unknown workload or node.
	ErrNotFound = errors.New("not found")
	// ErrConflict marks a request that clashes with existing state (a name in use).
	ErrConflict = errors.New("conflict")
	// ErrNotLeader marks a change sent to a server that does not lead.
	ErrNotLeader = errors.New("not the leader")
	// ErrAgent marks a node agent that refused or failed a command.
	ErrAgent = errors.New("agent error")
	// ErrNoFit is placement.ErrNoFit: no node can take the workload.
	ErrNoFit = placement.ErrNoFit
)

// Limits on requests, far above any real machine, that catch typos and
// overflow (a memory_mb meant as bytes).
const (
	maxCPUMillis = 1 << 20 // ~1,000 cores
	maxMemoryMB  = 1 << 24 // 16 TiB
	maxArgs      = 4096
)

var workloadNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)

// WorkloadRequest is what a user asks for (the body of POST /v1/workloads and
// POST /v1/plan).
type WorkloadRequest struct {
	Name        string            `json:"name"`
	Kind        string            `json:"kind,omitempty"`
	Command     []string          `json:"command"`
	Env         map[string]string `json:"env,omitempty"`
	Workdir     string            `json:"workdir,omitempty"`
	Resources   wire.Resources    `json:"resources"`
	Constraints store.Constraints `json:"constraints"`
	Strategy    string            `json:"strategy,omitempty"`
	// Priority (MinPriority..MaxPriority, default 0): the higher, the
	// costlier to disturb; the rebalancer moves lower priorities first.
	Priority int `json:"priority,omitempty"`
}

// Bounds of WorkloadRequest.Priority.
const (
	MinPriority = -100
	MaxPriority = 100
)

// Validate checks a request and says what is wrong with it, wrapping ErrInvalid.
func (r WorkloadRequest) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
	}
	switch {
	case r.Name == "":
		return bad(`"name" is required`)
	case !workloadNameRE.MatchString(r.Name):
		return bad(`name %q is invalid: use 1-63 letters, digits, '.', '-' or '_', starting with a letter or digit`, r.Name)
	case r.Kind != "" && r.Kind != "process":
		return bad(`kind %q is not supported: use "process"`, r.Kind)
	case len(r.Command) == 0 || r.Command[0] == "":
		return bad(`"command" is empty: give the program and its arguments, e.g. ["/usr/bin/python3","-m","http.server"]`)
	case len(r.Command) > maxArgs:
		return bad("command has %d arguments, at most %d allowed", len(r.Command), maxArgs)
	case r.Workdir != "" && !filepath.IsAbs(r.Workdir):
		return bad("workdir %q must be an absolute path", r.Workdir)
	case r.Resources.CPUMillis < 0 || r.Resources.MemoryMB < 0:
		return bad("resources must not be negative (cpu_millis %d, memory_mb %d)", r.Resources.CPUMillis, r.Resources.MemoryMB)
	case r.Resources.CPUMillis > maxCPUMillis:
		return bad("cpu_millis %d is absurd (at most %d): 1000 means one core", r.Resources.CPUMillis, maxCPUMillis)
	case r.Resources.MemoryMB > maxMemoryMB:
		return bad("memory_mb %d is absurd (at most %d): the unit is MiB, not bytes", r.Resources.MemoryMB, maxMemoryMB)
	case r.Priority < MinPriority || r.Priority > MaxPriority:
		return bad("priority %d is out of range: use %d to %d (default 0; higher is costlier to move)", r.Priority, MinPriority, MaxPriority)
	case r.Strategy != "" && r.Strategy != string(placement.BinPack) && r.Strategy != string(placement.Spread):
		return bad(`strategy %q is unknown: use "binpack" or "spread"`, r.Strategy)
	}
	for i, a := range r.Command {
		if strings.ContainsRune(a, 0) {
			return bad("command argument %d contains a NUL byte", i)
		}
	}
	for k, v := range r.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return bad("environment variable %q is invalid: names must be non-empty without '=' or NUL", k)
		}
	}
	for k := range r.Constraints.Labels {
		if k == "" {
			return bad("constraints: a label name is empty")
		}
	}
	for _, name := range r.Constraints.AntiAffinity {
		if name == "" {
			return bad("constraints: anti_affinity lists an empty workload name")
		}
	}
	for _, n := range append(append([]string{}, r.Constraints.Nodes...), r.Constraints.AvoidNodes...) {
		if err := wire.ValidNodeName(n); err != nil {
			return bad("constraints: %v", err)
		}
	}
	return nil
}

// placementRequest converts the request to placement's terms.
func (r WorkloadRequest) placementRequest(defaultStrategy placement.Strategy) placement.Request {
	s := placement.Strategy(r.Strategy)
	if s == "" {
		s = defaultStrategy
	}
	return placement.Request{
		Workload:  r.Name,
		Resources: placement.Resources{CPUMillis: r.Resources.CPUMillis, MemoryMB: r.Resources.MemoryMB},
		Constraints: placement.Constraints{
			Nodes:        r.Constraints.Nodes,
			AvoidNodes:   r.Constraints.AvoidNodes,
			Labels:       r.Constraints.Labels,
			AntiAffinity: r.Constraints.AntiAffinity,
		},
		Strategy: s,
	}
}

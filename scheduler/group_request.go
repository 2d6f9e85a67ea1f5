package scheduler

import (
	"encoding/json"
	"fmt"
	"regexp"
	"time"

	"github.com/batonhq/baton/failover/groups"
	"github.com/batonhq/baton/wire"
)

// groupNameRE keeps group and resource names free of '_' and '.', so that a
// resource's workload id (grp_GROUP_RESOURCE) names exactly one resource.
var groupNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9-]{0,40}$`)

// GroupRequest is the body of POST /v1/groups: a resource group, its
// resources in start order, and the nodes allowed to run it, most preferred
// first.
type GroupRequest struct {
	Name      string            `json:"name"`
	Nodes     []string          `json:"nodes,omitempty"`
	Failback  string            `json:"failback,omitempty"` // manual (default) or auto
	Resources []ResourceRequest `json:"resources"`
	// FailureThreshold is how many failures on one node keep the group off
	// it (default 3); FailureTimeout forgets them after that long ("10m").
	FailureThreshold int    `json:"failure_threshold,omitempty"`
	FailureTimeout   string `json:"failure_timeout,omitempty"`
}

// ResourceRequest is one resource of a group. Kind "process" is the only
// kind today; containers, floating addresses and scripts come later behind
// the same engine.
type ResourceRequest struct {
	Name      string            `json:"name"`
	Kind      string            `json:"kind,omitempty"`
	Command   []string          `json:"command"`
	Env       map[string]string `json:"env,omitempty"`
	Workdir   string            `json:"workdir,omitempty"`
	Resources wire.Resources    `json:"resources"`
	Monitor   *MonitorRequest   `json:"monitor,omitempty"`
}

// MonitorRequest is a resource's health monitor. Without a command, only the
// process exiting counts as a failure.
type MonitorRequest struct {
	Command  []string `json:"command,omitempty"`
	Interval string   `json:"interval,omitempty"` // default 2s
	Timeout  string   `json:"timeout,omitempty"`  // default 1s
	// Restarts is how many failures are restarted in place before the
	// group fails over (default 0: fail over at once).
	Restarts int `json:"restarts,omitempty"`
}

// processSpec is what a process resource carries inside groups.Resource.Spec.
type processSpec struct {
	Command   []string          `json:"command"`
	Env       map[string]string `json:"env,omitempty"`
	Workdir   string            `json:"workdir,omitempty"`
	Resources wire.Resources    `json:"resources"`
	Monitor   *wire.MonitorSpec `json:"monitor,omitempty"`
}

// Default monitor timing.
const (
	defaultMonitorInterval = 2 * time.Second
	defaultMonitorTimeout  = time.Second
)

// Group converts a request to the engine's form, saying what is wrong with
// it (wrapping ErrInvalid) if it cannot run.
func (r GroupRequest) Group() (groups.Group, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
	}
	if !groupNameRE.MatchString(r.Name) {
		return groups.Group{}, bad(`group name %q is invalid: use 1-41 letters, digits or '-', starting with a letter or digit`, r.Name)
	}
	g := groups.Group{Name: r.Name, Nodes: r.Nodes, Failback: groups.Failback(r.Failback), FailureThreshold: r.FailureThreshold}
	for _, n := range r.Nodes {
		if err := wire.ValidNodeName(n); err != nil {
			return groups.Group{}, bad("group %q: nodes: %v", r.Name, err)
		}
	}
	if r.FailureTimeout != "" {
		d, err := time.ParseDuration(r.FailureTimeout)
		if err != nil || d < 0 {
			return groups.Group{}, bad(`group %q: failure_timeout %q is not a duration like "10m"`, r.Name, r.FailureTimeout)
		}
		g.FailureTimeout = d
	}
	if len(r.Resources) == 0 {
		return groups.Group{}, bad(`group %q has no resources: give at least one, e.g. {"name":"db","kind":"process","command":["/usr/bin/sleep","inf"]}`, r.Name)
	}
	for i, res := range r.Resources {
		gr, err := res.resource(r.Name)
		if err != nil {
			return groups.Group{}, bad("group %q: resource %d: %v", r.Name, i, err)
		}
		g.Resources = append(g.Resources, gr)
	}
	if err := groups.Validate(g); err != nil {
		return groups.Group{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return g, nil
}

func (r ResourceRequest) resource(group string) (groups.Resource, error) {
	if !groupNameRE.MatchString(r.Name) {
		return groups.Resource{}, fmt.Errorf(`name %q is invalid: use 1-41 letters, digits or '-'`, r.Name)
	}
	if r.Kind != "" && r.Kind != string(groups.Process) {
		return groups.Resource{}, fmt.Errorf(`%s: kind %q is not supported yet: use "process"`, r.Name, r.Kind)
	}
	// The process part is checked like a workload's.
	w := WorkloadRequest{Name: r.Name, Command: r.Command, Env: r.Env, Workdir: r.Workdir, Resources: r.Resources}
	if err := w.Validate(); err != nil {
		return groups.Resource{}, fmt.Errorf("%s: %w", r.Name, err)
	}
	spec := processSpec{Command: r.Command, Env: r.Env, Workdir: r.Workdir, Resources: r.Resources}
	out := groups.Resource{Name: r.Name, Kind: groups.Process}
	if m := r.Monitor; m != nil {
		if m.Restarts < 0 {
			return groups.Resource{}, fmt.Errorf("%s: monitor restarts %d is negative", r.Name, m.Restarts)
		}
		out.Monitor.Restarts = m.Restarts
		interval, err := durationOr(m.Interval, defaultMonitorInterval)
		if err != nil {
			return groups.Resource{}, fmt.Errorf("%s: monitor interval: %v", r.Name, err)
		}
		timeout, err := durationOr(m.Timeout, defaultMonitorTimeout)
		if err != nil {
			return groups.Resource{}, fmt.Errorf("%s: monitor timeout: %v", r.Name, err)
		}
		out.Monitor.Interval, out.Monitor.Timeout = interval, timeout
		if len(m.Command) > 0 {
			if m.Command[0] == "" {
				return groups.Resource{}, fmt.Errorf("%s: monitor command names no program", r.Name)
			}
			spec.Monitor = &wire.MonitorSpec{Command: m.Command, IntervalMS: interval.Milliseconds(), TimeoutMS: timeout.Milliseconds()}
		}
	}
	out.Spec, _ = json.Marshal(spec) // plain data: cannot fail
	return out, nil
}

func durationOr(s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 10*time.Millisecond {
		return 0, fmt.Errorf("%q is not a duration of at least 10ms, like \"2s\"", s)
	}
	return d, nil
}

// groupWorkloadID is the agent-side workload id of a group's resource.
func groupWorkloadID(group, resource string) string { return "grp_" + group + "_" + resource }

// groupWorkloadSpec is what an agent is asked to start for a resource.
func groupWorkloadSpec(group string, r groups.Resource) (wire.WorkloadSpec, error) {
	var p processSpec
	if err := json.Unmarshal(r.Spec, &p); err != nil {
		return wire.WorkloadSpec{}, fmt.Errorf("group %s resource %s: corrupt spec: %w", group, r.Name, err)
	}
	return wire.WorkloadSpec{
		ID: groupWorkloadID(group, r.Name), Name: group + "/" + r.Name, Command: p.Command, Env: p.Env,
		Workdir: p.Workdir, Resources: p.Resources,
		Group: &wire.GroupRef{Group: group, Resource: r.Name}, Monitor: p.Monitor,
	}, nil
}

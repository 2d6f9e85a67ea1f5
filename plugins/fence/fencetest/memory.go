package fencetest

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/batonhq/baton/plugins/fence"
)

// Memory is the in-memory twin of a fence device: a set of targets whose
// power state is a map entry. It is configured with targets=a,b,c (all
// start on). Tests of code that fences (and of the SDK itself) use it.
type Memory struct {
	mu     sync.Mutex
	power  map[string]fence.PowerState // nil until configured
	events []string
}

var _ fence.Driver = (*Memory)(nil)

// NewMemory returns an unconfigured Memory device.
func NewMemory() *Memory { return &Memory{} }

// Configure takes targets=name[,name...].
func (m *Memory) Configure(ctx context.Context, params map[string]string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	power := map[string]fence.PowerState{}
	for k, v := range params {
		if k != "targets" {
			return fmt.Errorf("memory: parameter %q: %w (the only parameter is targets)", k, fence.ErrInvalidConfig)
		}
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				power[n] = fence.PowerOn
			}
		}
	}
	if len(power) == 0 {
		return fmt.Errorf("memory: %w: targets is required (e.g. targets=n1,n2)", fence.ErrInvalidConfig)
	}
	m.mu.Lock()
	m.power = power
	m.mu.Unlock()
	return nil
}

// Metadata describes the memory device.
func (m *Memory) Metadata(ctx context.Context) (fence.Metadata, error) {
	if err := ctx.Err(); err != nil {
		return fence.Metadata{}, err
	}
	return fence.Metadata{
		Name:        "memory",
		Description: "In-memory fence device for tests: power state is a map entry",
		Parameters: []fence.Parameter{{
			Name: "targets", Description: "Comma-separated target names, all initially on", Required: true,
		}},
	}, nil
}

// List returns the configured targets in name order.
func (m *Memory) List(ctx context.Context) ([]fence.Target, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.power == nil {
		return nil, fence.ErrNotConfigured
	}
	ts := make([]fence.Target, 0, len(m.power))
	for n := range m.power {
		ts = append(ts, fence.Target{Name: n})
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Name < ts[j].Name })
	return ts, nil
}

// Status reports the target's state.
func (m *Memory) Status(ctx context.Context, target string) (fence.PowerState, error) {
	if err := ctx.Err(); err != nil {
		return fence.PowerUnknown, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st, err := m.lookup(target)
	return st, err
}

// Off, On and Reboot set the state and record an event.
func (m *Memory) Off(ctx context.Context, target string) error {
	return m.set(ctx, "off", target, fence.PowerOff)
}

// On powers target on.
func (m *Memory) On(ctx context.Context, target string) error {
	return m.set(ctx, "on", target, fence.PowerOn)
}

// Reboot powers target off and on.
func (m *Memory) Reboot(ctx context.Context, target string) error {
	return m.set(ctx, "reboot", target, fence.PowerOn)
}

// Events returns the actions done so far, as "off n1", in order.
func (m *Memory) Events() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.events...)
}

func (m *Memory) set(ctx context.Context, action, target string, st fence.PowerState) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.lookup(target); err != nil {
		return err
	}
	m.power[target] = st
	m.events = append(m.events, action+" "+target)
	return nil
}

// lookup must be called with m.mu held.
func (m *Memory) lookup(target string) (fence.PowerState, error) {
	if m.power == nil {
		return fence.PowerUnknown, fence.ErrNotConfigured
	}
	st, ok := m.power[target]
	if !ok {
		return fence.PowerUnknown, fmt.Errorf("memory: target %q: %w", target, fence.ErrNotFound)
	}
	return st, nil
}

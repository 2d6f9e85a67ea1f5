package fencetest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/batonhq/baton/plugins/fence"
)

// Memory is the in-memory twin of a fence device: a set of targets whose
// power state is a map entry. It is configured with targets=a,b,c (all
// start on); with hang=1, Status, Off, On and Reboot block until their
// context ends, like a device that does not answer. Tests of code that
// fences (and of the SDK itself) use it.
type Memory struct {
	mu     sync.Mutex
	power  map[string]fence.PowerState // nil until configured
	hang   bool
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
	hang := false
	for k, v := range params {
		if k == "hang" {
			hang = v == "1"
			continue
		}
		if k != "targets" {
			return fmt.Errorf("memory: parameter %q: %w (the parameters are targets and hang)", k, fence.ErrInvalidConfig)
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
	m.power, m.hang = power, hang
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
		Parameters: []fence.Parameter{
			{Name: "targets", Description: "Comma-separated target names, all initially on", Required: true},
			{Name: "hang", Description: "1: power calls block until their context ends", Default: "0"},
		},
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
	if err := m.wait(ctx); err != nil {
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

// wait returns ctx's error at once, or, with hang=1, when ctx ends.
func (m *Memory) wait(ctx context.Context) error {
	m.mu.Lock()
	hang := m.hang
	m.mu.Unlock()
	if hang {
		<-ctx.Done()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("memory: device hangs: %w: %w", fence.ErrTimeout, ctx.Err())
		}
	}
	return ctx.Err()
}

func (m *Memory) set(ctx context.Context, action, target string, st fence.PowerState) error {
	if err := m.wait(ctx); err != nil {
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

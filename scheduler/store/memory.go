package store

import (
	"context"
	"sync"
)

// Memory is an in-memory Store for tests.
type Memory struct {
	mu sync.Mutex
	m  map[string]Workload
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory { return &Memory{m: map[string]Workload{}} }

// Put implements Store.
func (s *Memory) Put(_ context.Context, w Workload) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[w.ID] = w
	return nil
}

// Delete implements Store.
func (s *Memory) Delete(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
	return nil
}

// List implements Store.
func (s *Memory) List(_ context.Context) ([]Workload, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Workload, 0, len(s.m))
	for _, w := range s.m {
		out = append(out, w)
	}
	return out, nil
}

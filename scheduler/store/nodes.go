package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NodesBucket is the JetStream key-value bucket holding node records.
const NodesBucket = "baton_nodes"

// Node is what the scheduler must remember of a node across restarts: what
// an operator asked of it. What the node measures comes with its heartbeats.
type Node struct {
	Name      string    `json:"name"`
	Drained   bool      `json:"drained"`
	DrainedAt time.Time `json:"drained_at,omitzero"`
}

// NodeStore persists node records.
type NodeStore interface {
	// PutNode creates or replaces the record n.Name.
	PutNode(ctx context.Context, n Node) error
	// DeleteNode removes the record name; a missing record is not an error.
	DeleteNode(ctx context.Context, name string) error
	// ListNodes returns every record (in no particular order).
	ListNodes(ctx context.Context) ([]Node, error)
}

// NodesKV is a NodeStore on a JetStream key-value bucket.
type NodesKV struct {
	kv jetstream.KeyValue
}

// OpenNodesKV opens (creating if needed) the node bucket, with replicas as in OpenKV.
func OpenNodesKV(ctx context.Context, nc *nats.Conn, replicas int) (*NodesKV, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("store: JetStream: %w", err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      NodesBucket,
		Description: "Baton nodes: what operators asked of them (drains)",
		History:     1,
		Replicas:    max(replicas, 1),
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("store: opening key-value bucket %q (is JetStream enabled on the NATS server?): %w", NodesBucket, err)
	}
	return &NodesKV{kv: kv}, nil
}

// PutNode implements NodeStore.
func (s *NodesKV) PutNode(ctx context.Context, n Node) error {
	b, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("store: encoding node %s: %w", n.Name, err)
	}
	if _, err := s.kv.Put(ctx, n.Name, b); err != nil {
		return fmt.Errorf("store: saving node %s: %w", n.Name, err)
	}
	return nil
}

// DeleteNode implements NodeStore.
func (s *NodesKV) DeleteNode(ctx context.Context, name string) error {
	if err := s.kv.Purge(ctx, name); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("store: deleting node %s: %w", name, err)
	}
	return nil
}

// ListNodes implements NodeStore.
func (s *NodesKV) ListNodes(ctx context.Context) ([]Node, error) {
	keys, err := s.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: listing nodes: %w", err)
	}
	var out []Node
	for key := range keys.Keys() {
		e, err := s.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("store: reading node %s: %w", key, err)
		}
		var n Node
		if err := json.Unmarshal(e.Value(), &n); err != nil {
			return nil, fmt.Errorf("store: node %s holds a corrupt record: %w", key, err)
		}
		out = append(out, n)
	}
	return out, nil
}

// MemoryNodes is an in-memory NodeStore for tests.
type MemoryNodes struct {
	mu sync.Mutex
	m  map[string]Node
}

// NewMemoryNodes returns an empty in-memory node store.
func NewMemoryNodes() *MemoryNodes { return &MemoryNodes{m: map[string]Node{}} }

// PutNode implements NodeStore.
func (s *MemoryNodes) PutNode(_ context.Context, n Node) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[n.Name] = n
	return nil
}

// DeleteNode implements NodeStore.
func (s *MemoryNodes) DeleteNode(_ context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, name)
	return nil
}

// ListNodes implements NodeStore.
func (s *MemoryNodes) ListNodes(_ context.Context) ([]Node, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Node, 0, len(s.m))
	for _, n := range s.m {
		out = append(out, n)
	}
	return out, nil
}

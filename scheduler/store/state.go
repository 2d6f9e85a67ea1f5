package store

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StateBucket is the JetStream key-value bucket holding the cluster's HA
// state: the resource-group engine's snapshot and the quorum's votes.
const StateBucket = "baton_cluster"

// ErrNoState is returned by StateStore.Get for a key never written.
var ErrNoState = errors.New("store: no state under this key")

// StateStore keeps small documents (JSON) under fixed keys, for the state a
// new leader must find where its predecessor left it.
type StateStore interface {
	// Get returns the document under key, or an error wrapping ErrNoState.
	Get(ctx context.Context, key string) ([]byte, error)
	// Put replaces the document under key.
	Put(ctx context.Context, key string, doc []byte) error
}

// KVState is a StateStore on a JetStream key-value bucket.
type KVState struct{ kv jetstream.KeyValue }

// OpenKVState opens (creating if needed) the cluster-state bucket.
func OpenKVState(ctx context.Context, nc *nats.Conn, replicas int) (*KVState, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("store: JetStream: %w", err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: StateBucket, Description: "Baton cluster HA state: resource groups, quorum votes",
		History: 1, Replicas: max(replicas, 1), Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("store: opening key-value bucket %q (is JetStream enabled on the NATS server?): %w", StateBucket, err)
	}
	return &KVState{kv: kv}, nil
}

// Get implements StateStore.
func (s *KVState) Get(ctx context.Context, key string) ([]byte, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, fmt.Errorf("store: state %s: %w", key, ErrNoState)
	}
	if err != nil {
		return nil, fmt.Errorf("store: reading state %s: %w", key, err)
	}
	return e.Value(), nil
}

// Put implements StateStore.
func (s *KVState) Put(ctx context.Context, key string, doc []byte) error {
	if _, err := s.kv.Put(ctx, key, doc); err != nil {
		return fmt.Errorf("store: saving state %s: %w", key, err)
	}
	return nil
}

// MemoryState is an in-memory StateStore for tests.
type MemoryState struct {
	mu sync.Mutex
	m  map[string][]byte
}

// NewMemoryState returns an empty in-memory state store.
func NewMemoryState() *MemoryState { return &MemoryState{m: map[string][]byte{}} }

// Get implements StateStore.
func (s *MemoryState) Get(_ context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.m[key]
	if !ok {
		return nil, fmt.Errorf("store: state %s: %w", key, ErrNoState)
	}
	return append([]byte(nil), d...), nil
}

// Put implements StateStore.
func (s *MemoryState) Put(_ context.Context, key string, doc []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = append([]byte(nil), doc...)
	return nil
}

package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the JetStream key-value bucket holding workload records.
const Bucket = "baton_workloads"

// KV is a Store on a JetStream key-value bucket.
type KV struct {
	kv jetstream.KeyValue
}

// OpenKV opens (creating if needed) the workload bucket. replicas is the
// JetStream replication factor: 1 for a single NATS server, 3 for a cluster.
func OpenKV(ctx context.Context, nc *nats.Conn, replicas int) (*KV, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("store: JetStream: %w", err)
	}
	if replicas < 1 {
		replicas = 1
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "Baton workloads: desired and last observed state",
		History:     1,
		Replicas:    replicas,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("store: opening key-value bucket %q (is JetStream enabled on the NATS server?): %w", Bucket, err)
	}
	return &KV{kv: kv}, nil
}

// Put implements Store.
func (s *KV) Put(ctx context.Context, w Workload) error {
	b, err := json.Marshal(w)
	if err != nil {
		return fmt.Errorf("store: encoding workload %s: %w", w.ID, err)
	}
	if _, err := s.kv.Put(ctx, w.ID, b); err != nil {
		return fmt.Errorf("store: saving workload %s: %w", w.ID, err)
	}
	return nil
}

// Delete implements Store.
func (s *KV) Delete(ctx context.Context, id string) error {
	if err := s.kv.Purge(ctx, id); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("store: deleting workload %s: %w", id, err)
	}
	return nil
}

// List implements Store.
func (s *KV) List(ctx context.Context) ([]Workload, error) {
	keys, err := s.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: listing workloads: %w", err)
	}
	var out []Workload
	for key := range keys.Keys() {
		e, err := s.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			continue // deleted between listing and reading
		}
		if err != nil {
			return nil, fmt.Errorf("store: reading workload %s: %w", key, err)
		}
		var w Workload
		if err := json.Unmarshal(e.Value(), &w); err != nil {
			return nil, fmt.Errorf("store: workload %s holds a corrupt record: %w", key, err)
		}
		out = append(out, w)
	}
	return out, nil
}

package store

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// MigrationsBucket is the JetStream key-value bucket holding migration
// records.
const MigrationsBucket = "baton_migrations"

// MigrationStore persists migration records: opaque JSON documents (the
// scheduler's own format) by migration id, so that a restarted server or a
// new leader finds the migrations in flight and the past ones.
type MigrationStore interface {
	// PutMigration creates or replaces the record id.
	PutMigration(ctx context.Context, id string, doc []byte) error
	// DeleteMigration removes the record id; a missing record is not an error.
	DeleteMigration(ctx context.Context, id string) error
	// ListMigrations returns every record (in no particular order).
	ListMigrations(ctx context.Context) ([][]byte, error)
}

// MigrationsKV is a MigrationStore on a JetStream key-value bucket.
type MigrationsKV struct {
	kv jetstream.KeyValue
}

// OpenMigrationsKV opens (creating if needed) the migrations bucket, with
// replicas as in OpenKV.
func OpenMigrationsKV(ctx context.Context, nc *nats.Conn, replicas int) (*MigrationsKV, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("store: JetStream: %w", err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      MigrationsBucket,
		Description: "Baton live migrations: in flight and past",
		History:     1,
		Replicas:    max(replicas, 1),
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("store: opening key-value bucket %q (is JetStream enabled on the NATS server?): %w", MigrationsBucket, err)
	}
	return &MigrationsKV{kv: kv}, nil
}

// PutMigration implements MigrationStore.
func (s *MigrationsKV) PutMigration(ctx context.Context, id string, doc []byte) error {
	if _, err := s.kv.Put(ctx, id, doc); err != nil {
		return fmt.Errorf("store: saving migration %s: %w", id, err)
	}
	return nil
}

// DeleteMigration implements MigrationStore.
func (s *MigrationsKV) DeleteMigration(ctx context.Context, id string) error {
	if err := s.kv.Purge(ctx, id); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("store: deleting migration %s: %w", id, err)
	}
	return nil
}

// ListMigrations implements MigrationStore.
func (s *MigrationsKV) ListMigrations(ctx context.Context) ([][]byte, error) {
	keys, err := s.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: listing migrations: %w", err)
	}
	var out [][]byte
	for key := range keys.Keys() {
		e, err := s.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("store: reading migration %s: %w", key, err)
		}
		out = append(out, e.Value())
	}
	return out, nil
}

// MemoryMigrations is an in-memory MigrationStore for tests.
type MemoryMigrations struct {
	mu sync.Mutex
	m  map[string][]byte
}

// NewMemoryMigrations returns an empty in-memory migration store.
func NewMemoryMigrations() *MemoryMigrations { return &MemoryMigrations{m: map[string][]byte{}} }

// PutMigration implements MigrationStore.
func (s *MemoryMigrations) PutMigration(_ context.Context, id string, doc []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[id] = append([]byte(nil), doc...)
	return nil
}

// DeleteMigration implements MigrationStore.
func (s *MemoryMigrations) DeleteMigration(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
	return nil
}

// ListMigrations implements MigrationStore.
func (s *MemoryMigrations) ListMigrations(_ context.Context) ([][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][]byte, 0, len(s.m))
	for _, d := range s.m {
		out = append(out, append([]byte(nil), d...))
	}
	return out, nil
}

package store

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// testMigrationStore runs the MigrationStore contract; reopen (if not nil)
// gives a store on the same data, as a restarted server would see it.
func testMigrationStore(t *testing.T, s MigrationStore, reopen func(t *testing.T) MigrationStore) {
	ctx := context.Background()
	if list, err := s.ListMigrations(ctx); err != nil || len(list) != 0 {
		t.Fatalf("new store lists %q, %v", list, err)
	}
	for _, id := range []string{"m-1", "m-2"} {
		if err := s.PutMigration(ctx, id, []byte(`{"id":"`+id+`","v":1}`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutMigration(ctx, "m-1", []byte(`{"id":"m-1","v":2}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMigration(ctx, "m-2"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMigration(ctx, "m-9"); err != nil {
		t.Fatalf("deleting a missing record: %v", err)
	}
	if reopen != nil {
		s = reopen(t)
	}
	list, err := s.ListMigrations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || string(list[0]) != `{"id":"m-1","v":2}` {
		t.Fatalf("list = %q, want only the second version of m-1", list)
	}
}

func TestMemoryMigrations(t *testing.T) { testMigrationStore(t, NewMemoryMigrations(), nil) }

func TestMigrationsKVSurvivesReconnect(t *testing.T) {
	url := startJetStream(t)
	open := func(t *testing.T) MigrationStore {
		nc, err := nats.Connect(url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		kv, err := OpenMigrationsKV(context.Background(), nc, 1)
		if err != nil {
			t.Fatal(err)
		}
		return kv
	}
	testMigrationStore(t, open(t), open)
}

// startJetStream runs an embedded NATS server with JetStream for the test
// and returns its URL.
func startJetStream(t *testing.T) string {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS not ready")
	}
	t.Cleanup(srv.Shutdown)
	return srv.ClientURL()
}

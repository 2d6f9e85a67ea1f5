package store

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// testStore runs the same contract against every Store implementation.
func testStore(t *testing.T, open func(t *testing.T) Store, reopen func(t *testing.T) Store) {
	ctx := context.Background()
	s := open(t)
	list, err := s.List(ctx)
	if err != nil || len(list) != 0 {
		t.Fatalf("new store lists %v, %v", list, err)
	}
	a := Workload{ID: "w-a", Name: "a", Command: []string{"/bin/true"}, Node: "n1", State: "running", Desired: DesiredRunning, HostPID: 42}
	b := Workload{ID: "w-b", Name: "b", Command: []string{"/bin/false"}, Node: "n2", State: "starting", Desired: DesiredRunning}
	for _, w := range []Workload{a, b} {
		if err := s.Put(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	a.State, a.HostPID = "failed", 0
	if err := s.Put(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "w-b"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "w-missing"); err != nil {
		t.Fatalf("deleting a missing record: %v", err)
	}
	if reopen != nil {
		s = reopen(t)
	}
	list, err = s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != "w-a" || list[0].State != "failed" || list[0].HostPID != 0 || !slices.Equal(list[0].Command, a.Command) {
		t.Fatalf("list = %+v, want only the updated w-a", list)
	}
}

func TestMemory(t *testing.T) {
	testStore(t, func(*testing.T) Store { return NewMemory() }, nil)
}

func TestKVSurvivesReconnect(t *testing.T) {
	dir := t.TempDir()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS not ready")
	}
	t.Cleanup(srv.Shutdown)
	open := func(t *testing.T) Store {
		nc, err := nats.Connect(srv.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		kv, err := OpenKV(context.Background(), nc, 1)
		if err != nil {
			t.Fatal(err)
		}
		return kv
	}
	testStore(t, open, open) // a second connection (a restarted server) sees the same records
}

// testNodeStore runs the NodeStore contract; reopen (if not nil) gives a
// store on the same data, as a restarted server would see it.
func testNodeStore(t *testing.T, s NodeStore, reopen func(t *testing.T) NodeStore) {
	ctx := context.Background()
	if list, err := s.ListNodes(ctx); err != nil || len(list) != 0 {
		t.Fatalf("new store lists %v, %v", list, err)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, n := range []Node{{Name: "n1", Drained: true, DrainedAt: at}, {Name: "n2", Drained: true}} {
		if err := s.PutNode(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteNode(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteNode(ctx, "n9"); err != nil {
		t.Fatalf("deleting a missing record: %v", err)
	}
	if reopen != nil {
		s = reopen(t)
	}
	list, err := s.ListNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "n1" || !list[0].Drained || !list[0].DrainedAt.Equal(at) {
		t.Fatalf("list = %+v, want only n1, drained at %v", list, at)
	}
}

func TestMemoryNodes(t *testing.T) { testNodeStore(t, NewMemoryNodes(), nil) }

func TestNodesKVSurvivesReconnect(t *testing.T) {
	url := startJetStream(t)
	open := func(t *testing.T) NodeStore {
		nc, err := nats.Connect(url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		kv, err := OpenNodesKV(context.Background(), nc, 1)
		if err != nil {
			t.Fatal(err)
		}
		return kv
	}
	testNodeStore(t, open(t), open)
}

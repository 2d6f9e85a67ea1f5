package groups

import (
	"errors"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	ok := Group{Name: "db", Resources: []Resource{{Name: "ip", Kind: IP}, {Name: "db", Kind: Process}}}
	tests := []struct {
		name   string
		change func(*Group)
		valid  bool
	}{
		{"valid", func(*Group) {}, true},
		{"no name", func(g *Group) { g.Name = "" }, false},
		{"no resources", func(g *Group) { g.Resources = nil }, false},
		{"unnamed resource", func(g *Group) { g.Resources = []Resource{{Kind: Process}} }, false},
		{"duplicate resource", func(g *Group) { g.Resources = []Resource{{Name: "a"}, {Name: "a"}} }, false},
		{"negative restarts", func(g *Group) { g.Resources = []Resource{{Name: "a", Monitor: Monitor{Restarts: -1}}} }, false},
		{"bad failback", func(g *Group) { g.Failback = "sometimes" }, false},
		{"auto failback", func(g *Group) { g.Failback = FailbackAuto }, true},
		{"negative threshold", func(g *Group) { g.FailureThreshold = -1 }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := ok
			g.Resources = append([]Resource(nil), ok.Resources...)
			tc.change(&g)
			err := Validate(g)
			if (err == nil) != tc.valid {
				t.Fatalf("Validate = %v, want valid=%v", err, tc.valid)
			}
			if err != nil && !errors.Is(err, ErrInvalidGroup) {
				t.Fatalf("error %v does not wrap ErrInvalidGroup", err)
			}
		})
	}
}

func TestInvalidCreateIsReported(t *testing.T) {
	e := New(DefaultConfig())
	acts := e.Handle(Event{Kind: CreateGroup, At: epoch, Spec: &Group{Name: "x"}})
	if len(acts) != 1 || acts[0].Kind != SetState || len(e.Groups()) != 0 {
		t.Fatalf("invalid create gave %v and groups %v", acts, e.Groups())
	}
}

func TestNextDeadline(t *testing.T) {
	e := New(Config{SelfFenceWait: 5 * time.Second, FenceRetry: 2 * time.Second, DefaultFenceLevels: []string{"ipmi"}})
	e.Handle(Event{Kind: QuorumGained, At: epoch})
	e.Handle(Event{Kind: NodeUp, At: epoch, Node: "n1"})
	e.Handle(Event{Kind: NodeUp, At: epoch, Node: "n2"})
	e.Handle(Event{Kind: CreateGroup, At: epoch, Spec: &Group{Name: "g", Nodes: []string{"n1", "n2"}, Resources: []Resource{{Name: "r"}}}})
	if _, ok := e.NextDeadline(); ok {
		t.Fatal("a deadline with nothing down")
	}
	e.Handle(Event{Kind: NodeDown, At: epoch.Add(time.Second), Node: "n1"})
	if d, ok := e.NextDeadline(); !ok || !d.Equal(epoch.Add(6*time.Second)) {
		t.Fatalf("deadline %v %v, want the self-fence deadline at 6s", d, ok)
	}
	e.Handle(Event{Kind: FenceFailed, At: epoch.Add(2 * time.Second), Node: "n1", Level: 0})
	if d, ok := e.NextDeadline(); !ok || !d.Equal(epoch.Add(4*time.Second)) {
		t.Fatalf("deadline %v %v, want the fence retry at 4s", d, ok)
	}
	acts := e.Handle(Event{Kind: Tick, At: epoch.Add(4 * time.Second)})
	if len(acts) != 1 || acts[0].Kind != Fence {
		t.Fatalf("retry tick gave %v, want one fence", acts)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"default", DefaultConfig(), true},
		{"fencing only", Config{StopWithin: 2 * time.Second}, true},
		{"wait shorter than the stop bound", Config{SelfFenceWait: time.Second, StopWithin: 2 * time.Second}, false},
		{"negative retry", Config{FenceRetry: -1}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrBadConfig)) {
				t.Fatalf("Validate = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

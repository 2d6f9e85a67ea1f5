package quorum

import (
	"math/rand/v2"
	"testing"
)

// cluster builds a tracker with the given votes per node, all live.
func cluster(cfg Config, votes map[string]int) *Tracker {
	t := New(cfg)
	for n, v := range votes {
		t.Add(n, v)
		t.SetLive(n, true)
	}
	return t
}

func TestClassicCases(t *testing.T) {
	type step func(*Tracker)
	down := func(nodes ...string) step {
		return func(t *Tracker) {
			for _, n := range nodes {
				t.SetLive(n, false)
			}
		}
	}
	witness := func(g bool) step { return func(t *Tracker) { t.SetWitness(g) } }
	votes := func(n string, v int) step {
		return func(t *Tracker) {
			if _, err := t.SetVotes(n, v); err != nil {
				panic(err)
			}
		}
	}
	three := map[string]int{"n1": 1, "n2": 1, "n3": 1}
	two := map[string]int{"n1": 1, "n2": 1}
	four := map[string]int{"n1": 1, "n2": 1, "n3": 1, "n4": 1}
	tests := []struct {
		name      string
		cfg       Config
		votes     map[string]int
		steps     []step
		quorate   bool
		live, exp int
	}{
		{"3 nodes all up", Config{}, three, nil, true, 3, 3},
		{"3 nodes lose 1", Config{}, three, []step{down("n3")}, true, 2, 3},
		{"3 nodes split: the 2 side", Config{}, three, []step{down("n3")}, true, 2, 3},
		{"3 nodes split: the 1 side", Config{}, three, []step{down("n1", "n2")}, false, 1, 3},
		{"2 nodes + witness lose 1", Config{WitnessVotes: 1}, two, []step{down("n2"), witness(true)}, true, 2, 3},
		{"2 nodes + witness lose 1, witness went to the other", Config{WitnessVotes: 1}, two, []step{down("n2"), witness(false)}, false, 1, 3},
		{"2 nodes without witness lose 1", Config{}, two, []step{down("n2")}, false, 1, 2},
		{"4 nodes split 2/2 without witness", Config{}, four, []step{down("n3", "n4")}, false, 2, 4},
		{"4 nodes split 2/2 with witness: granted side", Config{WitnessVotes: 1}, four, []step{down("n3", "n4"), witness(true)}, true, 3, 5},
		{"4 nodes split 2/2 with witness: other side", Config{WitnessVotes: 1}, four, []step{down("n1", "n2")}, false, 2, 5},
		{"3 nodes, n1 given 2 votes, n1 alone", Config{}, three, []step{votes("n1", 2), down("n2", "n3")}, false, 2, 4},
		{"3 nodes, n1 given 2 votes, n1+n2", Config{}, three, []step{votes("n1", 2), down("n3")}, true, 3, 4},
		{"3 nodes, n1 given 2 votes, n2+n3", Config{}, three, []step{votes("n1", 2), down("n1")}, false, 2, 4},
		{"3 nodes, n3 given 0 votes, n3 lost", Config{}, three, []step{votes("n3", 0), down("n3")}, true, 2, 2},
		{"expected votes configured above the known nodes", Config{ExpectedVotes: 5}, three, []step{down("n3")}, false, 2, 5},
		{"forgotten node lowers expected", Config{}, three, []step{down("n2", "n3"), func(t *Tracker) { t.Forget("n2"); t.Forget("n3") }}, true, 1, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := cluster(tc.cfg, tc.votes)
			for _, s := range tc.steps {
				s(tr)
			}
			st := tr.Status()
			if st.Quorate != tc.quorate || st.LiveVotes != tc.live || st.ExpectedVotes != tc.exp {
				t.Fatalf("got %v; want quorate=%v live=%d expected=%d", st, tc.quorate, tc.live, tc.exp)
			}
		})
	}
}

func TestWaitForAll(t *testing.T) {
	tr := New(Config{ExpectedVotes: 3, WaitForAll: true})
	if st := tr.Status(); st.Quorate || !st.WaitingForAll {
		t.Fatalf("empty cluster: %v", st)
	}
	tr.SetLive("n1", true)
	tr.SetLive("n2", true)
	if st := tr.Status(); st.Quorate || !st.WaitingForAll {
		t.Fatalf("2 of 3 at first start must wait for all: %v", st)
	}
	tr.SetLive("n2", false)
	tr.SetLive("n3", true)
	tr.SetLive("n2", true)
	if st := tr.Status(); !st.Quorate || st.WaitingForAll {
		t.Fatalf("all 3 seen together: %v", st)
	}
	tr.SetLive("n3", false)
	if st := tr.Status(); !st.Quorate {
		t.Fatalf("after all were seen, 2 of 3 is quorate: %v", st)
	}
	// Seen one at a time, never together: still waiting.
	tr2 := New(Config{ExpectedVotes: 2, WaitForAll: true})
	tr2.SetLive("n1", true)
	tr2.SetLive("n1", false)
	tr2.SetLive("n2", true)
	if st := tr2.Status(); st.Quorate || !st.WaitingForAll {
		t.Fatalf("nodes seen one at a time: %v", st)
	}
}

func TestSetVotesErrors(t *testing.T) {
	tr := New(Config{})
	if _, err := tr.SetVotes("ghost", 1); err == nil {
		t.Fatal("votes of an unknown node accepted")
	}
	tr.Add("n1", -1)
	if _, err := tr.SetVotes("n1", -2); err == nil {
		t.Fatal("negative votes accepted")
	}
	if n := tr.Nodes(); len(n) != 1 || n[0].Votes != 1 {
		t.Fatalf("default votes: %v", n)
	}
}

// naive is the quorum rule written the slow, obvious way: count votes one by
// one and compare twice the votes held with the votes expected.
func naive(cfg Config, nodes []Node, witness bool) bool {
	total, held := 0, 0
	for _, n := range nodes {
		for range n.Votes {
			total++
			if n.Live {
				held++
			}
		}
	}
	if cfg.ExpectedVotes > total {
		total = cfg.ExpectedVotes
	}
	for range cfg.WitnessVotes {
		total++
		if witness {
			held++
		}
	}
	return total > 0 && 2*held > total // a strict majority
}

func randomCluster(r *rand.Rand) (Config, []Node) {
	cfg := Config{ExpectedVotes: r.IntN(8), WitnessVotes: r.IntN(3) * r.IntN(2)}
	nodes := make([]Node, r.IntN(8))
	for i := range nodes {
		nodes[i] = Node{Name: string(rune('a' + i)), Votes: r.IntN(4), Live: r.IntN(2) == 0}
	}
	return cfg, nodes
}

func TestAgainstNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		cfg, nodes := randomCluster(r)
		w := r.IntN(2) == 0
		st := Evaluate(cfg, nodes, w, true)
		if want := naive(cfg, nodes, w); st.Quorate != want {
			t.Fatalf("cfg %+v nodes %+v witness %v: got %v, naive says %v", cfg, nodes, w, st, want)
		}
	}
}

// TestNoTwoQuoratePartitions splits random clusters in two; with the witness
// granted to at most one side, at most one side is quorate.
func TestNoTwoQuoratePartitions(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 20000; i++ {
		cfg, nodes := randomCluster(r)
		cfg.WaitForAll = r.IntN(2) == 0
		a, b := make([]Node, len(nodes)), make([]Node, len(nodes))
		for j, n := range nodes {
			side := r.IntN(3) // 0: a, 1: b, 2: dead for both
			a[j], b[j] = n, n
			a[j].Live, b[j].Live = side == 0, side == 1
		}
		wa := r.IntN(3) == 0
		wb := !wa && r.IntN(2) == 0
		sa, sb := Evaluate(cfg, a, wa, r.IntN(2) == 0), Evaluate(cfg, b, wb, r.IntN(2) == 0)
		if sa.Quorate && sb.Quorate {
			t.Fatalf("both partitions quorate: cfg %+v\na %+v %v\nb %+v %v", cfg, a, sa, b, sb)
		}
	}
}

func FuzzEvaluate(f *testing.F) {
	f.Add(uint64(1), uint64(2))
	f.Fuzz(func(t *testing.T, s1, s2 uint64) {
		r := rand.New(rand.NewPCG(s1, s2))
		cfg, nodes := randomCluster(r)
		w := r.IntN(2) == 0
		if got, want := Evaluate(cfg, nodes, w, true).Quorate, naive(cfg, nodes, w); got != want {
			t.Fatalf("cfg %+v nodes %+v witness %v: got %v, naive %v", cfg, nodes, w, got, want)
		}
	})
}

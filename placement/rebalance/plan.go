package rebalance

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/batonhq/baton/placement"
)

// Node is the rebalancer's view of one node.
type Node struct {
	Name    string
	State   string // membership state, for explanations
	Ready   bool   // running: may be a source or a target
	Drained bool   // an operator drained it: never a target, every workload leaves
	Labels  map[string]string
	// Capacity and Headroom (measured free at the last report) drive heat
	// and imbalance; Headroom − Reserved (the requests of the workloads
	// placed here, targets of migrations in flight included) is what
	// placement lets a workload take, as for any placement.
	Capacity, Headroom, Reserved placement.Resources
	Workloads                    []string // names of the workloads placed here, for anti-affinity
	CanMigrate                   bool     // CRIU works here
	Heat                         Heat     // from the Tracker
}

// Workload is a running workload that is not migrating.
type Workload struct {
	ID, Name, Node string
	Requests       placement.Resources
	RSSMB          int64 // resident memory, measured
	Priority       int   // higher is costlier to disturb
	Constraints    placement.Constraints
	LastMoved      time.Time // its last migration's start; zero if never
	DrainFailures  int       // live migrations off its drained node that failed
}

// Pending is a migration in flight, or one that ended so recently that its
// nodes have not reported since: the measured headroom does not show it yet,
// so the plan counts it as done.
type Pending struct {
	Workload, Source, Target string
	MemoryMB, CPUMillis      int64 // what it shifts: resident memory and CPU request
	InFlight                 bool  // still migrating: counts against the budgets
}

// Input is everything Plan looks at.
type Input struct {
	Now       time.Time
	Policy    Policy
	Nodes     []Node
	Workloads []Workload
	Pending   []Pending
}

// Move kinds.
const (
	KindRebalance    = "rebalance"     // live migration off a hot node
	KindDrain        = "drain"         // live migration off a drained node
	KindDrainRestart = "drain-restart" // stop on the drained node, start on the target
)

// Move is one workload to move and why.
type Move struct {
	Kind              string  `json:"kind"`
	Workload          string  `json:"workload"`
	WorkloadName      string  `json:"workload_name"`
	From              string  `json:"from"`
	To                string  `json:"to"`
	RSSMB             int64   `json:"rss_mb"`
	Priority          int     `json:"priority"`
	PredictedFrozenMS float64 `json:"predicted_frozen_ms"`
	Benefit           float64 `json:"benefit"` // how much the imbalance drops
	Score             float64 `json:"score"`   // benefit per weighted second frozen
	Reason            string  `json:"reason"`
}

// Skip is a workload the plan considered and left, and why.
type Skip struct {
	Workload     string `json:"workload"`
	WorkloadName string `json:"workload_name"`
	Node         string `json:"node"`
	Reason       string `json:"reason"`
}

// Plan is what the rebalancer would do now.
type Plan struct {
	Policy Level `json:"policy"`
	// Imbalance is the standard deviation of node load over the
	// schedulable nodes, pending migrations counted as done;
	// ImbalanceAfter is the same after the moves.
	Imbalance      float64  `json:"imbalance"`
	ImbalanceAfter float64  `json:"imbalance_after"`
	Hot            []string `json:"hot"`
	Moves          []Move   `json:"moves"`
	Skipped        []Skip   `json:"skipped"`
	Notes          []string `json:"notes"`
}

// state is the cluster as the plan projects it: pending migrations and the
// plan's own moves applied.
type state struct {
	in       *Input
	nodes    []Node                // copies; Headroom and Reserved are projected
	index    map[string]int        // name → position in nodes
	measured []placement.Resources // each node's headroom as reported, before projection
	inflight []int                 // migrations in flight per node, plan's included
	cluster  int                   // migrations in flight in the cluster, plan's included
	byNode   map[string][]int      // node → indexes into in.Workloads still there
}

// Decide returns the moves to make now: first every workload of a drained
// node (unless budgets say wait), then, unless the policy is off, the moves
// off hot nodes that lower the imbalance most for their cost. It is pure and
// does not modify in.
func Decide(in Input) Plan {
	s := newState(&in)
	p := Plan{Policy: in.Policy.Level, Hot: []string{}, Moves: []Move{}, Skipped: []Skip{}, Notes: []string{}}
	p.Imbalance = s.imbalance()
	for _, n := range s.nodes {
		if n.Heat.Hot && n.Ready {
			p.Hot = append(p.Hot, n.Name)
		}
	}
	s.planDrains(&p)
	if in.Policy.Level == Off {
		p.Notes = append(p.Notes, "rebalancing is off (drains still move workloads)")
	} else {
		s.planRebalance(&p)
	}
	p.ImbalanceAfter = s.imbalance()
	return p
}

func newState(in *Input) *state {
	s := &state{in: in, index: map[string]int{}, byNode: map[string][]int{}}
	s.nodes = slices.Clone(in.Nodes)
	slices.SortFunc(s.nodes, func(a, b Node) int { return cmp.Compare(a.Name, b.Name) })
	s.inflight = make([]int, len(s.nodes))
	s.measured = make([]placement.Resources, len(s.nodes))
	for i := range s.nodes {
		s.measured[i] = s.nodes[i].Headroom
		s.nodes[i].Workloads = slices.Clone(s.nodes[i].Workloads)
		s.index[s.nodes[i].Name] = i
	}
	for _, pm := range in.Pending {
		s.shift(pm.Source, pm.Target, pm.MemoryMB, pm.CPUMillis)
		if pm.InFlight {
			s.cluster++
			for _, n := range []string{pm.Source, pm.Target} {
				if i, ok := s.index[n]; ok {
					s.inflight[i]++
				}
			}
		}
	}
	order := make([]int, len(in.Workloads))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(in.Workloads[a].Name, in.Workloads[b].Name), cmp.Compare(in.Workloads[a].ID, in.Workloads[b].ID))
	})
	for _, i := range order {
		w := in.Workloads[i]
		s.byNode[w.Node] = append(s.byNode[w.Node], i)
	}
	return s
}

// shift moves measured usage from one node to another in the projection.
func (s *state) shift(from, to string, memMB, cpuMillis int64) {
	if i, ok := s.index[from]; ok {
		s.nodes[i].Headroom.MemoryMB += memMB
		s.nodes[i].Headroom.CPUMillis += cpuMillis
	}
	if i, ok := s.index[to]; ok {
		s.nodes[i].Headroom.MemoryMB -= memMB
		s.nodes[i].Headroom.CPUMillis -= cpuMillis
	}
}

// schedulable says whether a node counts in the imbalance and may receive.
func schedulable(n Node) bool { return n.Ready && !n.Drained }

// load is a node's most used watched resource, 0..1.
func load(n Node, p Policy) float64 {
	l := 0.0
	for _, d := range watchedDims(p) {
		if c := d.get(n.Capacity); c > 0 {
			l = max(l, 1-float64(d.get(n.Headroom))/float64(c))
		}
	}
	return min(max(l, 0), 1)
}

// coolAfter reports whether every watched resource of n has at least CoolFree
// free, and if not, what is short.
func coolAfter(n Node, p Policy) (bool, string) {
	for _, d := range watchedDims(p) {
		if c := d.get(n.Capacity); c > 0 {
			if frac := float64(d.get(n.Headroom)) / float64(c); frac < p.CoolFree {
				return false, fmt.Sprintf("%s %s free", d.name, pct(max(frac, 0)))
			}
		}
	}
	return true, ""
}

func (s *state) imbalance() float64 {
	var loads []float64
	for _, n := range s.nodes {
		if schedulable(n) {
			loads = append(loads, load(n, s.in.Policy))
		}
	}
	if len(loads) < 2 {
		return 0
	}
	mean := 0.0
	for _, l := range loads {
		mean += l
	}
	mean /= float64(len(loads))
	v := 0.0
	for _, l := range loads {
		v += (l - mean) * (l - mean)
	}
	// Rounded so that equal spreads compare equal whatever the summation order.
	return math.Round(math.Sqrt(v/float64(len(loads)))*1e6) / 1e6
}

// placementNodes is placement's view of the projection. A node's headroom
// there is the lower of the measured and the projected one: memory that a
// migration will free is not counted until it is (the migration may roll
// back), memory that one will take is counted at once.
func (s *state) placementNodes() []placement.Node {
	out := make([]placement.Node, len(s.nodes))
	for i, n := range s.nodes {
		st := n.State
		if n.Drained {
			st = "drained"
		}
		out[i] = placement.Node{Name: n.Name, Ready: schedulable(n), State: st, Labels: n.Labels,
			Capacity: n.Capacity, Reserved: n.Reserved, Workloads: n.Workloads,
			Headroom: placement.Resources{CPUMillis: min(n.Headroom.CPUMillis, s.measured[i].CPUMillis), MemoryMB: min(n.Headroom.MemoryMB, s.measured[i].MemoryMB)}}
	}
	return out
}

// request is what w asks of a target: its requests, at least its resident
// memory, its constraints, away from its node.
func request(w Workload) placement.Request {
	c := w.Constraints
	c.AvoidNodes = append(slices.Clone(c.AvoidNodes), w.Node)
	// Its own name on its own node must not count against it.
	c.AntiAffinity = slices.DeleteFunc(slices.Clone(c.AntiAffinity), func(n string) bool { return n == w.Name })
	return placement.Request{Workload: w.Name, Strategy: placement.Spread,
		Resources:   placement.Resources{CPUMillis: w.Requests.CPUMillis, MemoryMB: max(w.Requests.MemoryMB, w.RSSMB)},
		Constraints: c}
}

// measured is what w adds to its node's measured usage: its resident memory
// and, since per-workload CPU is not measured, its CPU request.
func measured(w Workload) (memMB, cpuMillis int64) { return w.RSSMB, w.Requests.CPUMillis }

// apply moves w to target in the projection.
func (s *state) apply(w Workload, target string, migration bool) {
	mem, cpu := measured(w)
	s.shift(w.Node, target, mem, cpu)
	req := request(w).Resources
	si, ti := s.index[w.Node], s.index[target]
	s.nodes[si].Reserved.MemoryMB -= w.Requests.MemoryMB
	s.nodes[si].Reserved.CPUMillis -= w.Requests.CPUMillis
	s.nodes[ti].Reserved.MemoryMB += req.MemoryMB
	s.nodes[ti].Reserved.CPUMillis += req.CPUMillis
	if k := slices.Index(s.nodes[si].Workloads, w.Name); k >= 0 {
		s.nodes[si].Workloads = slices.Delete(s.nodes[si].Workloads, k, k+1)
	}
	s.nodes[ti].Workloads = append(s.nodes[ti].Workloads, w.Name)
	if migration {
		s.inflight[si]++
		s.inflight[ti]++
		s.cluster++
	}
}

// budgetNote says why the budget allows no migration touching node i, or "".
func (s *state) budgetNote(i int) string {
	p := s.in.Policy
	switch {
	case s.cluster >= p.MaxPerCluster:
		return fmt.Sprintf("cluster budget: %d of %d migrations in flight", s.cluster, p.MaxPerCluster)
	case i >= 0 && s.inflight[i] >= p.MaxPerNode:
		return fmt.Sprintf("node budget: %s has %d of %d migrations in flight", s.nodes[i].Name, s.inflight[i], p.MaxPerNode)
	}
	return ""
}

// remove takes workload index wi off node's list.
func (s *state) remove(node string, wi int) {
	s.byNode[node] = slices.DeleteFunc(s.byNode[node], func(x int) bool { return x == wi })
}

// planDrains moves every workload of every drained node: by live migration
// to the node that stays coolest, or by restart where that is impossible.
func (s *state) planDrains(p *Plan) {
	pol := s.in.Policy
	for si := range s.nodes {
		src := s.nodes[si]
		if !src.Drained {
			continue
		}
		for _, wi := range slices.Clone(s.byNode[src.Name]) {
			w := s.in.Workloads[wi]
			restartWhy := ""
			switch {
			case !src.CanMigrate:
				restartWhy = "CRIU is not available on " + src.Name
			case w.DrainFailures >= max(pol.MaxDrainAttempts, 1):
				restartWhy = fmt.Sprintf("%d live migrations failed", w.DrainFailures)
			}
			dec, err := placement.Place(s.placementNodes(), request(w))
			if err != nil {
				p.Skipped = append(p.Skipped, Skip{w.ID, w.Name, src.Name, "drain: no node can take it: " + dec.Explain()})
				continue
			}
			best, bestCool, bestImb := -1, false, 0.0
			var noCRIU []string
			for _, c := range dec.Candidates {
				ti := s.index[c.Node]
				if restartWhy == "" && !s.nodes[ti].CanMigrate {
					noCRIU = append(noCRIU, c.Node)
					continue
				}
				cool, imb := s.tryOn(w, ti)
				if best < 0 || (cool && !bestCool) || (cool == bestCool && imb < bestImb) {
					best, bestCool, bestImb = ti, cool, imb
				}
			}
			if best < 0 { // every node that fits lacks CRIU
				restartWhy = "no node that fits can restore it (CRIU is not available on " + strings.Join(noCRIU, ", ") + ")"
				for _, c := range dec.Candidates {
					cool, imb := s.tryOn(w, s.index[c.Node])
					if best < 0 || (cool && !bestCool) || (cool == bestCool && imb < bestImb) {
						best, bestCool, bestImb = s.index[c.Node], cool, imb
					}
				}
			}
			target := s.nodes[best].Name
			m := Move{Kind: KindDrain, Workload: w.ID, WorkloadName: w.Name, From: src.Name, To: target,
				RSSMB: w.RSSMB, Priority: w.Priority, PredictedFrozenMS: ms(pol.PredictFrozen(w.RSSMB))}
			if restartWhy != "" {
				m.Kind, m.PredictedFrozenMS = KindDrainRestart, 0
				m.Reason = fmt.Sprintf("%s is drained; restarting %s on %s: live migration is impossible: %s", src.Name, w.Name, target, restartWhy)
			} else {
				if note := s.budgetNote(si); note != "" {
					p.Skipped = append(p.Skipped, Skip{w.ID, w.Name, src.Name, "drain waits: " + note})
					continue
				}
				if note := s.budgetNote(best); note != "" {
					p.Skipped = append(p.Skipped, Skip{w.ID, w.Name, src.Name, "drain waits: " + note})
					continue
				}
				m.Reason = fmt.Sprintf("%s is drained; moving %s live to %s (predicted frozen %s)", src.Name, w.Name, target, pol.PredictFrozen(w.RSSMB))
			}
			if !bestCool {
				m.Reason += "; no cooler node fits: " + target + " will run warm"
			}
			s.apply(w, target, m.Kind == KindDrain)
			s.remove(src.Name, wi)
			p.Moves = append(p.Moves, m)
		}
	}
}

// tryOn projects w onto node ti and reports whether ti stays cool and the
// imbalance then, leaving the projection as it was.
func (s *state) tryOn(w Workload, ti int) (cool bool, imbalance float64) {
	mem, cpu := measured(w)
	from, to := w.Node, s.nodes[ti].Name
	s.shift(from, to, mem, cpu)
	cool, _ = coolAfter(s.nodes[ti], s.in.Policy)
	imbalance = s.imbalance()
	s.shift(to, from, mem, cpu)
	return cool, imbalance
}

// candidate is one possible rebalancing move.
type candidate struct {
	wi     int
	target int
	move   Move
}

// planRebalance picks moves off hot nodes one at a time, best score first,
// re-projecting after each, until the budgets are spent or no move helps.
func (s *state) planRebalance(p *Plan) {
	pol := s.in.Policy
	for {
		var sources []int
		for i, n := range s.nodes {
			if !n.Heat.Hot || !schedulable(n) {
				continue
			}
			if cool, _ := coolAfter(n, pol); cool {
				continue // pending moves already relieve it
			}
			sources = append(sources, i)
		}
		if len(sources) == 0 {
			if len(p.Hot) == 0 {
				p.Notes = append(p.Notes, "no node is hot")
			} else {
				p.Notes = append(p.Notes, "every hot node is relieved by the moves in flight or planned")
			}
			return
		}
		if note := s.budgetNote(-1); note != "" {
			p.Notes = append(p.Notes, note)
			return
		}
		var best *candidate
		var skips []Skip
		before := s.imbalance()
		for _, si := range sources {
			src := s.nodes[si]
			if note := s.budgetNote(si); note != "" {
				for _, wi := range s.byNode[src.Name] {
					w := s.in.Workloads[wi]
					skips = append(skips, Skip{w.ID, w.Name, src.Name, note})
				}
				continue
			}
			for _, wi := range s.byNode[src.Name] {
				c, why := s.bestMoveOf(wi, si, before)
				if c == nil {
					w := s.in.Workloads[wi]
					skips = append(skips, Skip{w.ID, w.Name, src.Name, why})
					continue
				}
				if best == nil || c.move.Score > best.move.Score {
					best = c // ties: the first, by source, workload and target name
				}
			}
		}
		if best == nil {
			p.Skipped = append(p.Skipped, skips...)
			p.Notes = append(p.Notes, "no move off the hot nodes helps enough")
			return
		}
		w := s.in.Workloads[best.wi]
		s.apply(w, best.move.To, true)
		s.remove(w.Node, best.wi)
		p.Moves = append(p.Moves, best.move)
	}
}

// bestMoveOf finds the best target for workload wi on hot node si, or says
// why there is none.
func (s *state) bestMoveOf(wi, si int, before float64) (*candidate, string) {
	pol := s.in.Policy
	w := s.in.Workloads[wi]
	src := s.nodes[si]
	frozen := pol.PredictFrozen(w.RSSMB)
	switch {
	case !src.CanMigrate:
		return nil, "CRIU is not available on " + src.Name
	case !w.LastMoved.IsZero() && s.in.Now.Sub(w.LastMoved) < pol.Cooldown:
		return nil, fmt.Sprintf("moved %s ago: cooldown %s", s.in.Now.Sub(w.LastMoved).Round(time.Second), pol.Cooldown)
	case frozen > pol.MaxFrozen:
		return nil, fmt.Sprintf("predicted frozen %s (RSS %d MiB) exceeds the policy's %s", frozen, w.RSSMB, pol.MaxFrozen)
	}
	dec, err := placement.Place(s.placementNodes(), request(w))
	if err != nil {
		return nil, "no node can take it: " + dec.Explain()
	}
	weight := frozen.Seconds() * math.Pow(2, float64(w.Priority)/25)
	var best *candidate
	why := ""
	for _, c := range dec.Candidates {
		ti := s.index[c.Node]
		tgt := s.nodes[ti]
		if !tgt.CanMigrate {
			why = cmp.Or(why, "CRIU is not available on "+tgt.Name)
			continue
		}
		if note := s.budgetNote(ti); note != "" {
			why = cmp.Or(why, note)
			continue
		}
		mem, cpu := measured(w)
		s.shift(w.Node, tgt.Name, mem, cpu)
		cool, short := coolAfter(s.nodes[ti], pol)
		after := s.imbalance()
		s.shift(tgt.Name, w.Node, mem, cpu)
		if !cool {
			why = cmp.Or(why, fmt.Sprintf("would leave %s with %s (it must stay above %s free)", tgt.Name, short, pct(pol.CoolFree)))
			continue
		}
		gain := before - after
		if gain < pol.MinImprovement {
			why = cmp.Or(why, fmt.Sprintf("moving it to %s lowers the imbalance by %.3f only (the policy wants %.3f)", tgt.Name, max(gain, 0), pol.MinImprovement))
			continue
		}
		score := gain / max(weight, 1e-3)
		if best != nil && score <= best.move.Score {
			continue
		}
		best = &candidate{wi: wi, target: ti, move: Move{
			Kind: KindRebalance, Workload: w.ID, WorkloadName: w.Name, From: src.Name, To: tgt.Name,
			RSSMB: w.RSSMB, Priority: w.Priority, PredictedFrozenMS: ms(frozen), Benefit: round3(gain), Score: round3(score),
			Reason: fmt.Sprintf("%s is hot (%s); moving %s (RSS %d MiB, predicted frozen %s, priority %d) to %s lowers the imbalance %.3f → %.3f",
				src.Name, heatWhy(src.Heat), w.Name, w.RSSMB, frozen, w.Priority, tgt.Name, before, after),
		}}
	}
	if best == nil {
		return nil, cmp.Or(why, "no target")
	}
	return best, ""
}

// heatWhy says why a hot node is hot.
func heatWhy(h Heat) string {
	if h.HotStreak > 0 {
		return fmt.Sprintf("%s, %d hot reports in a row", h.Why, h.HotStreak)
	}
	return fmt.Sprintf("%s at the last report, not yet cool", h.Why)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

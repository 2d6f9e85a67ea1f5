package placement

import (
	"math"
	"strconv"
	"testing"
)

// BenchmarkPlace measures a Cluster's Place, the placer for many decisions
// in a row, on realistic clusters and requests (see randomCluster and
// realisticRequest). The Cluster is built once, outside the timing, as a
// scheduler keeps one (BenchmarkNewCluster times the building). At 5000
// nodes it also runs with the nodes shuffled ("unsorted") and with a request
// that has no label or anti-affinity constraint ("resources-only").
// BenchmarkNaivePlace runs the same cases through the obvious placer, as the
// baseline for ratios.
func BenchmarkPlace(b *testing.B) {
	var cluster *Cluster
	var built []Node
	benchmarkPlacer(b, func(nodes []Node, req Request) string {
		if len(built) == 0 || &built[0] != &nodes[0] {
			b.StopTimer()
			var err error
			if cluster, err = NewCluster(nodes); err != nil {
				b.Fatal(err)
			}
			built = nodes
			b.StartTimer()
		}
		d, _ := cluster.Place(req)
		return d.Node
	})
}

// BenchmarkPlaceFunc measures the function Place, which needs no Cluster:
// one pass over the nodes reading every Node, their label maps and workload
// lists.
func BenchmarkPlaceFunc(b *testing.B) {
	benchmarkPlacer(b, func(nodes []Node, req Request) string {
		d, _ := Place(nodes, req)
		return d.Node
	})
}

// BenchmarkPlan measures the function Plan, the dry run that ranks every
// candidate and names every rejected node.
func BenchmarkPlan(b *testing.B) {
	benchmarkPlacer(b, func(nodes []Node, req Request) string {
		d, _ := Plan(nodes, req)
		return d.Node
	})
}

// BenchmarkNewCluster measures building a Cluster, which a caller pays once
// per set of nodes (and Cluster.Update per changed node).
func BenchmarkNewCluster(b *testing.B) {
	for _, size := range []int{1000, 5000} {
		nodes := randomCluster(newRand(uint64(size)), size, false)
		b.Run("nodes="+strconv.Itoa(size), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := NewCluster(nodes); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkNaivePlace is the baseline: the reference placer of the property
// test (slices.Contains for every set, sort.Slice over all candidates) with
// floating-point scores, which is what an obvious implementation would use.
func BenchmarkNaivePlace(b *testing.B) {
	benchmarkPlacer(b, func(nodes []Node, req Request) string {
		return naivePlaceWith(nodes, req, floatUnits).Node
	})
}

func benchmarkPlacer(b *testing.B, place func([]Node, Request) string) {
	type variant struct {
		name     string
		shuffled bool
		plain    bool // no label or anti-affinity constraint
	}
	for _, size := range []int{100, 1000, 5000} {
		variants := []variant{{name: ""}}
		if size == 5000 {
			variants = append(variants, variant{name: "/unsorted", shuffled: true}, variant{name: "/resources-only", plain: true})
		}
		for _, v := range variants {
			nodes := randomCluster(newRand(uint64(size)), size, v.shuffled)
			for _, s := range []Strategy{BinPack, Spread} {
				req := realisticRequest(s)
				if v.plain {
					req.Constraints = Constraints{}
				}
				b.Run("nodes="+strconv.Itoa(size)+"/"+string(s)+v.name, func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						if place(nodes, req) == "" {
							b.Fatal("nothing placed")
						}
					}
					b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
				})
			}
		}
	}
}

func floatUnits(n Node, req Request, strategy Strategy) int64 {
	frac := func(headroom, reserved, need, capacity int64) float64 {
		size := capacity
		if size <= 0 {
			size = max(headroom, 0)
		}
		if size == 0 {
			if strategy == Spread {
				return 0
			}
			return 1
		}
		freeAfter := min(max(naiveFree(headroom, reserved)-need, 0), size)
		if strategy == Spread {
			return float64(freeAfter) / float64(size)
		}
		return float64(size-freeAfter) / float64(size)
	}
	cpu := frac(n.Headroom.CPUMillis, n.Reserved.CPUMillis, req.Resources.CPUMillis, n.Capacity.CPUMillis)
	mem := frac(n.Headroom.MemoryMB, n.Reserved.MemoryMB, req.Resources.MemoryMB, n.Capacity.MemoryMB)
	return int64(math.Floor((cpu + mem) * 50 * 10000))
}

package placement

import (
	"math"
	"strconv"
	"testing"
)

// BenchmarkPlace measures Place on realistic clusters and requests (see
// randomCluster and realisticRequest), the nodes sorted by name as the
// scheduler passes them. At 5000 nodes it also runs with the nodes shuffled
// ("unsorted") and with a request that has no label or anti-affinity
// constraint ("resources-only"), which shows the cost of reading the nodes'
// label maps and workload lists. BenchmarkNaivePlace runs the same cases
// through the obvious placer, as the baseline for ratios.
func BenchmarkPlace(b *testing.B) {
	benchmarkPlacer(b, func(nodes []Node, req Request) string {
		d, _ := Place(nodes, req)
		return d.Node
	})
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

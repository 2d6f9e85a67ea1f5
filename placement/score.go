package placement

import (
	"math"
	"math/bits"
)

// Scores are kept as integers in units of 1/scoreScale point, from 0 to
// maxScore, and shown as Candidate.Score = units / scoreScale.
const (
	scoreScale = 10_000
	maxScore   = 100 * scoreScale
)

// score is n's score in units for the plan's strategy: the mean over CPU
// and memory of the fraction the strategy rewards, times maxScore,
// truncated. BinPack rewards the fraction used after placement, Spread the
// fraction free. Only called for nodes that passed the cpu and memory
// filters.
func (p *plan) score(n *Node) uint32 {
	spread := p.strategy == Spread
	a1, b1 := fraction(free(n.Headroom.CPUMillis, n.Reserved.CPUMillis)-p.req.Resources.CPUMillis,
		size(n.Capacity.CPUMillis, n.Headroom.CPUMillis), spread)
	a2, b2 := fraction(free(n.Headroom.MemoryMB, n.Reserved.MemoryMB)-p.req.Resources.MemoryMB,
		size(n.Capacity.MemoryMB, n.Headroom.MemoryMB), spread)
	return meanUnits(a1, b1, a2, b2)
}

// clusterUnits is score for a Cluster's node: it multiplies by the
// reciprocals of the sizes that the Cluster keeps instead of dividing. A
// node that cannot score above cutoff units cannot enter the ranking (a
// Cluster offers nodes in name order, so a later node with an equal score
// loses): clusterUnits says so (false) from the approximate score, without
// the exact one, which most nodes then never need.
func (p *plan) clusterUnits(f *fit, cutoff float64) (uint32, bool) {
	spread := p.strategy == Spread
	a1, b1 := fraction(f.freeCPU-p.req.Resources.CPUMillis, f.sizeCPU, spread)
	a2, b2 := fraction(f.freeMem-p.req.Resources.MemoryMB, f.sizeMem, spread)
	sum := float64(a1)*f.invSizeCPU + float64(a2)*f.invSizeMem
	// The approximate score is within 1e-9 of the exact one (see
	// meanUnitsNear): below cutoff+1 by more than that, it truncates to
	// cutoff or less.
	if maxScore/2*sum < cutoff+1-1e-6 {
		return 0, false
	}
	return meanUnitsNear(sum, a1, b1, a2, b2), true
}

// reciprocal is 1/b for the b that fraction divides by for a dimension of
// this size.
func reciprocal(size int64) float64 { return 1 / float64(max(size, 1)) }

// size is the size of one dimension of a node for scoring: its capacity, or
// its headroom when the capacity is not known, never negative.
func size(capacity, headroom int64) int64 {
	if capacity > 0 {
		return capacity
	}
	return max(headroom, 0)
}

// fraction returns a/b, 0 ≤ a ≤ b, b > 0: the part of one dimension that the
// strategy rewards, given what is free after placement and the dimension's
// size. A dimension of size zero counts as full.
func fraction(freeAfter, size int64, spread bool) (a, b int64) {
	if size == 0 {
		if spread {
			return 0, 1
		}
		return 1, 1
	}
	freeAfter = min(max(freeAfter, 0), size)
	if spread {
		return freeAfter, size
	}
	return size - freeAfter, size
}

// meanUnits returns ⌊maxScore/2 · (a1/b1 + a2/b2)⌋ exactly. Floating point
// gives the answer unless the value lies within a hair of an integer, where
// rounding errors could move it across; those cases are done in 128-bit
// integer arithmetic.
func meanUnits(a1, b1, a2, b2 int64) uint32 {
	return meanUnitsNear(float64(a1)/float64(b1)+float64(a2)/float64(b2), a1, b1, a2, b2)
}

// meanUnitsNear is meanUnits given sum, a floating-point value of a1/b1 +
// a2/b2 with a relative error below 1e-12 (a few roundings of float64 do:
// each is below 1.2e-16). Scaled to units the error stays below 1e-6, the
// margin inside which the answer is worked out exactly.
func meanUnitsNear(sum float64, a1, b1, a2, b2 int64) uint32 {
	v := maxScore / 2 * sum
	fl := math.Floor(v)
	if frac := v - fl; frac > 1e-6 && frac < 1-1e-6 {
		return uint32(fl)
	}
	return exactMeanUnits(uint64(a1), uint64(b1), uint64(a2), uint64(b2))
}

func exactMeanUnits(a1, b1, a2, b2 uint64) uint32 {
	const half = maxScore / 2
	// half·a/b = w + r/b; since a ≤ b the high word is below b, as Div64 needs.
	h, l := bits.Mul64(half, a1)
	w1, r1 := bits.Div64(h, l, b1)
	h, l = bits.Mul64(half, a2)
	w2, r2 := bits.Div64(h, l, b2)
	q := w1 + w2
	// The remainders add up to one more unit when r1/b1 + r2/b2 ≥ 1, that is
	// r1·b2 + r2·b1 ≥ b1·b2. Each product is below 2^126, so nothing overflows.
	h1, l1 := bits.Mul64(r1, b2)
	h2, l2 := bits.Mul64(r2, b1)
	sl, carry := bits.Add64(l1, l2, 0)
	sh := h1 + h2 + carry
	bh, bl := bits.Mul64(b1, b2)
	if sh > bh || (sh == bh && sl >= bl) {
		q++
	}
	return uint32(q)
}

package placement

import (
	"encoding/binary"
	"math"
	"strconv"
	"testing"
)

// FuzzPlace decodes a cluster and a request from the fuzzer's bytes, places
// the request with Place and Plan, and checks that neither panics, that the
// invariants hold, that Plan agrees with the reference placer and Place
// with Plan.
func FuzzPlace(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0})
	f.Add([]byte{1, 5, 5, 0, 0, 0, 0, 1, 10, 20, 10, 20, 1, 2})
	f.Add([]byte{2, 0x80, 0x81, 1, 2, 1, 1, 3, 0x82, 0x82, 0x83, 0x83, 0x40, 0, 9, 0x40, 1, 0, 7, 3, 4, 5, 6, 7, 8})
	f.Add([]byte("\x03\xc0\x01\x02\x03\x04\x05\x06\x07\x08 spread down suspect web db"))
	f.Add(bigSeed())
	f.Fuzz(func(t *testing.T, data []byte) {
		nodes, req := decodeCluster(data)
		placeAndPlan(t, nodes, req)
	})
}

// bigSeed is a cluster with far more nodes than Place keeps candidates.
func bigSeed() []byte {
	b := []byte{1, 2, 3, 3, 0, 0, 0, 0} // workload b, spread, 300m and 300 MiB
	for i := range 300 {
		b = append(b, 0, byte(i), byte(10+i%30), byte(10+i%20), byte(10+i%30), byte(10+i%20))
	}
	return b
}

// byteReader hands out the fuzzer's bytes, then zeros.
type byteReader struct{ b []byte }

func (r *byteReader) more() bool { return len(r.b) > 0 }

func (r *byteReader) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// amount decodes a resource amount: mostly small round numbers (which make
// ties), sometimes 16-bit, extreme or raw 64-bit values.
func (r *byteReader) amount() int64 {
	c := r.byte()
	switch c >> 6 {
	case 0:
		return int64(c&63) * 100
	case 1:
		return int64(c&63)<<8 | int64(r.byte())
	case 2:
		return []int64{0, -1, math.MaxInt64, math.MinInt64, 1 << 62, math.MaxInt64 - 1, 1, -100}[c&7]
	default:
		var buf [8]byte
		for i := range buf {
			buf[i] = r.byte()
		}
		return int64(binary.LittleEndian.Uint64(buf[:]))
	}
}

var fuzzNames = []string{"a", "b", "c", "node-1", "node-10", "node-2", "", "ä", "web"}

func (r *byteReader) name() string { return fuzzNames[int(r.byte())%len(fuzzNames)] }

func (r *byteReader) names() []string {
	var out []string
	for range int(r.byte()) % 11 { // up to 10, past the short-list limit
		out = append(out, r.name())
	}
	return out
}

func (r *byteReader) labels() map[string]string {
	n := int(r.byte()) % 3
	if n == 0 {
		return nil
	}
	m := map[string]string{}
	for range n {
		m[[]string{"zone", "disk", ""}[int(r.byte())%3]] = []string{"a", "b", ""}[int(r.byte())%3]
	}
	return m
}

func decodeCluster(data []byte) ([]Node, Request) {
	r := &byteReader{b: data}
	req := Request{Workload: r.name()}
	switch s := r.byte(); s % 4 {
	case 1:
		req.Strategy = BinPack
	case 2:
		req.Strategy = Spread
	case 3:
		req.Strategy = Strategy("s" + strconv.Itoa(int(s)))
	}
	req.Resources = Resources{CPUMillis: r.amount(), MemoryMB: r.amount()}
	req.Constraints = Constraints{Nodes: r.names(), AvoidNodes: r.names(), Labels: r.labels(), AntiAffinity: r.names()}
	var nodes []Node
	for r.more() && len(nodes) < 1000 {
		flags := r.byte()
		n := Node{
			Name:     r.name(),
			Ready:    flags&1 == 0,
			State:    []string{"running", "down", "suspect", ""}[flags>>1&3],
			Capacity: Resources{CPUMillis: r.amount(), MemoryMB: r.amount()},
			Headroom: Resources{CPUMillis: r.amount(), MemoryMB: r.amount()},
		}
		if flags&8 != 0 {
			n.Reserved = Resources{CPUMillis: r.amount(), MemoryMB: r.amount()}
		}
		if flags&16 != 0 {
			n.Labels = r.labels()
		}
		if flags&32 != 0 {
			n.Workloads = r.names()
		}
		nodes = append(nodes, n)
	}
	return nodes, req
}

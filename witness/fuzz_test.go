package witness

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/batonhq/baton/witness/grants"
)

// FuzzDecodeClaim: any body either decodes to a claim the table accepts, or
// fails with ErrBadRequest; never a panic.
func FuzzDecodeClaim(f *testing.F) {
	for _, s := range []string{
		`{"cluster":"prod","holder":"s1-a1b2c3","ttl_ms":3000}`,
		`{"cluster":"","holder":"a","ttl_ms":1}`,
		`{"cluster":"c","holder":"a","ttl_ms":600000}`,
		`{"cluster":"c","holder":"a","ttl_ms":-1}`,
		`{"cluster":"c","holder":"a","ttl_ms":1e3}`,
		`{"cluster":"c","holder":"a\u0000","ttl_ms":5}`,
		`{}{}`, `[]`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeClaim(bytes.NewReader(body))
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("DecodeClaim(%q) = %v, not ErrBadRequest", body, err)
			}
			return
		}
		a, err := grants.New().Claim(req.Cluster, req.Holder, time.Duration(req.TTLMS)*time.Millisecond, time.Unix(0, 0))
		if err != nil || !a.Granted {
			t.Fatalf("decoded claim %+v from %q is refused by a free table: %+v, %v", req, body, a, err)
		}
		again, err := DecodeClaim(bytes.NewReader(mustJSON(t, req)))
		if err != nil || again != req {
			t.Fatalf("re-encoded claim %+v decodes to %+v, %v", req, again, err)
		}
	})
}

// FuzzDecodeRelease: the same for release bodies.
func FuzzDecodeRelease(f *testing.F) {
	for _, s := range []string{`{"cluster":"prod","holder":"a"}`, `{"cluster":"prod"}`, `{"cluster":"p","holder":"a","x":1}`, `"str"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeRelease(bytes.NewReader(body))
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("DecodeRelease(%q) = %v, not ErrBadRequest", body, err)
			}
			return
		}
		if _, err := grants.New().Release(req.Cluster, req.Holder, time.Unix(0, 0)); err != nil {
			t.Fatalf("decoded release %+v from %q is refused: %v", req, body, err)
		}
	})
}

// FuzzDecodeState: a state file either restores, or fails with ErrBadState.
func FuzzDecodeState(f *testing.F) {
	f.Add(encodeState([]grants.Durable{{Cluster: "prod", Holder: "a", TTL: 3 * time.Second}}))
	f.Add(encodeState(nil))
	f.Add([]byte(`{"version":2,"grants":[]}`))
	f.Add([]byte(`{"version":1,"grants":[{"cluster":"c","holder":"a","ttl_ms":1},{"cluster":"c","holder":"b","ttl_ms":1}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := decodeState(b)
		if err != nil {
			if !errors.Is(err, ErrBadState) {
				t.Fatalf("decodeState(%q) = %v, not ErrBadState", b, err)
			}
			return
		}
		if _, err := grants.Restore(recs, time.Unix(0, 0)); err != nil && !errors.Is(err, grants.ErrBadClaim) {
			t.Fatalf("Restore of %+v: %v", recs, err)
		}
		again, err := decodeState(encodeState(recs))
		if err != nil || len(again) != len(recs) {
			t.Fatalf("re-encoded state %+v decodes to %+v, %v", recs, again, err)
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

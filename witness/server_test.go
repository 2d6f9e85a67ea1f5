package witness

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for the server.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
}

func openServer(t *testing.T, dir string, clock *fakeClock) *Server {
	t.Helper()
	s, err := Open(Config{DataDir: dir, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// call sends one request to h and returns the status and the decoded body.
func call(t *testing.T, h http.Handler, method, path, body string) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	var v map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("%s %s: body %q is not JSON: %v", method, path, rec.Body.String(), err)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	return rec.Code, v
}

func TestHTTPClaimRefuseRenewRelease(t *testing.T) {
	clock := newClock()
	h := openServer(t, t.TempDir(), clock).Handler()
	steps := []struct {
		name    string
		advance time.Duration
		method  string
		path    string
		body    string
		code    int
		want    map[string]any
	}{
		{"a claims", 0, "POST", "/v1/witness/claim", `{"cluster":"prod","holder":"a","ttl_ms":3000}`,
			200, map[string]any{"granted": true, "cluster": "prod", "holder": "a", "expires_in_ms": 3000.0}},
		{"b is refused with a's name and the time left", time.Second, "POST", "/v1/witness/claim", `{"cluster":"prod","holder":"b","ttl_ms":3000}`,
			409, map[string]any{"granted": false, "cluster": "prod", "holder": "a", "expires_in_ms": 2000.0}},
		{"a renews", 0, "POST", "/v1/witness/claim", `{"cluster":"prod","holder":"a","ttl_ms":3000}`,
			200, map[string]any{"granted": true, "cluster": "prod", "holder": "a", "expires_in_ms": 3000.0}},
		{"status lists the grant", 500 * time.Millisecond, "GET", "/v1/witness", "",
			200, map[string]any{"grants": []any{map[string]any{"cluster": "prod", "holder": "a", "ttl_ms": 3000.0, "expires_in_ms": 2500.0, "held_ms": 1500.0}}}},
		{"b cannot release a's lease", 0, "POST", "/v1/witness/release", `{"cluster":"prod","holder":"b"}`,
			200, map[string]any{"released": false, "cluster": "prod"}},
		{"a releases", 0, "POST", "/v1/witness/release", `{"cluster":"prod","holder":"a"}`,
			200, map[string]any{"released": true, "cluster": "prod"}},
		{"b gets it at once", 0, "POST", "/v1/witness/claim", `{"cluster":"prod","holder":"b","ttl_ms":1000}`,
			200, map[string]any{"granted": true, "cluster": "prod", "holder": "b", "expires_in_ms": 1000.0}},
		{"after b's TTL a gets it back", time.Second, "POST", "/v1/witness/claim", `{"cluster":"prod","holder":"a","ttl_ms":1000}`,
			200, map[string]any{"granted": true, "cluster": "prod", "holder": "a", "expires_in_ms": 1000.0}},
		{"nothing is listed once it expired", time.Second, "GET", "/v1/witness", "",
			200, map[string]any{"grants": []any{}}},
	}
	for _, s := range steps {
		clock.Advance(s.advance)
		code, got := call(t, h, s.method, s.path, s.body)
		gb, _ := json.Marshal(got)
		wb, _ := json.Marshal(s.want)
		if code != s.code || string(gb) != string(wb) {
			t.Errorf("%s: %s %s = %d %s\nwant %d %s", s.name, s.method, s.path, code, gb, s.code, wb)
		}
	}
}

func TestHTTPBadRequestsSayWhatIsWrong(t *testing.T) {
	h := openServer(t, t.TempDir(), newClock()).Handler()
	tests := []struct {
		name, method, path, body string
		code                     int
		errCode, want            string
	}{
		{"not JSON", "POST", "/v1/witness/claim", `cluster=prod`, 400, "bad_request", "not the expected JSON object"},
		{"unknown field", "POST", "/v1/witness/claim", `{"cluster":"c","holder":"a","ttl_ms":1000,"tll":1}`, 400, "bad_request", `unknown field "tll"`},
		{"no cluster", "POST", "/v1/witness/claim", `{"holder":"a","ttl_ms":1000}`, 400, "bad_request", "name the cluster"},
		{"no holder", "POST", "/v1/witness/claim", `{"cluster":"c","ttl_ms":1000}`, 400, "bad_request", "name the holder"},
		{"no ttl", "POST", "/v1/witness/claim", `{"cluster":"c","holder":"a"}`, 400, "bad_request", "ttl_ms 0"},
		{"ttl too long", "POST", "/v1/witness/claim", `{"cluster":"c","holder":"a","ttl_ms":3600000}`, 400, "bad_request", "1 to 600000"},
		{"ttl as a string", "POST", "/v1/witness/claim", `{"cluster":"c","holder":"a","ttl_ms":"3s"}`, 400, "bad_request", "ttl_ms"},
		{"two objects", "POST", "/v1/witness/claim", `{"cluster":"c","holder":"a","ttl_ms":1000}{}`, 400, "bad_request", "data after the JSON object"},
		{"huge body", "POST", "/v1/witness/claim", `{"cluster":"` + strings.Repeat("x", maxBody) + `"}`, 400, "bad_request", "larger than"},
		{"release without holder", "POST", "/v1/witness/release", `{"cluster":"c"}`, 400, "bad_request", "name the holder"},
		{"GET a claim", "GET", "/v1/witness/claim", "", 405, "method_not_allowed", "use POST"},
		{"POST the status", "POST", "/v1/witness", "{}", 405, "method_not_allowed", "use GET"},
		{"unknown path", "GET", "/v1/nodes", "", 404, "not_found", "POST /v1/witness/claim"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, got := call(t, h, tc.method, tc.path, tc.body)
			e, _ := got["error"].(map[string]any)
			msg, _ := e["message"].(string)
			if code != tc.code || e["code"] != tc.errCode || !strings.Contains(msg, tc.want) {
				t.Errorf("%s %s %.100s = %d %v; want %d %s mentioning %q", tc.method, tc.path, tc.body, code, got, tc.code, tc.errCode, tc.want)
			}
		})
	}
}

func TestARestartedWitnessHonoursPersistedGrantsForTheirFullTTL(t *testing.T) {
	dir, clock := t.TempDir(), newClock()
	h := openServer(t, dir, clock).Handler()
	call(t, h, "POST", "/v1/witness/claim", `{"cluster":"prod","holder":"a","ttl_ms":3000}`)
	call(t, h, "POST", "/v1/witness/claim", `{"cluster":"test","holder":"x","ttl_ms":1000}`)
	clock.Advance(2 * time.Second) // test's grant expired; prod's has 1 s left

	// "Crash" (the old server is simply dropped) and restart an hour later
	// by the wall clock.
	clock.Advance(time.Hour)
	h = openServer(t, dir, clock).Handler()
	clock.Advance(3*time.Second - time.Millisecond)
	if code, got := call(t, h, "POST", "/v1/witness/claim", `{"cluster":"prod","holder":"b","ttl_ms":3000}`); code != 409 || got["holder"] != "a" || got["expires_in_ms"] != 1.0 {
		t.Errorf("b's claim 1 ms before a's restored grant ends = %d %v, want 409 held by a for 1 ms", code, got)
	}
	clock.Advance(time.Millisecond)
	if code, got := call(t, h, "POST", "/v1/witness/claim", `{"cluster":"prod","holder":"b","ttl_ms":3000}`); code != 200 {
		t.Errorf("b's claim a full TTL after the restart = %d %v, want granted", code, got)
	}
}

func TestTheStateFileKeepsOnlyLiveGrants(t *testing.T) {
	dir, clock := t.TempDir(), newClock()
	s := openServer(t, dir, clock)
	call(t, s.Handler(), "POST", "/v1/witness/claim", `{"cluster":"prod","holder":"a","ttl_ms":1000}`)
	if recs, err := readState(dir); err != nil || len(recs) != 1 || recs[0].Holder != "a" {
		t.Fatalf("state after a grant = %+v, %v", recs, err)
	}
	next, ok := s.leases.sweep()
	if !ok || !next.Equal(clock.Now().Add(time.Second)) {
		t.Errorf("next expiry = %s, %v", next, ok)
	}
	clock.Advance(time.Second)
	if _, ok := s.leases.sweep(); ok {
		t.Error("an expiry is still pending after the only grant expired")
	}
	if recs, err := readState(dir); err != nil || len(recs) != 0 {
		t.Errorf("state after the grant expired = %+v, %v; want empty", recs, err)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*.tmp")); len(leftovers) != 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}
}

func TestAGrantThatCannotBePersistedIsRefused(t *testing.T) {
	dir, clock := filepath.Join(t.TempDir(), "data"), newClock()
	h := openServer(t, dir, clock).Handler()
	if err := os.RemoveAll(dir); err != nil { // its disk "fails"
		t.Fatal(err)
	}
	code, got := call(t, h, "POST", "/v1/witness/claim", `{"cluster":"prod","holder":"a","ttl_ms":3000}`)
	if e, _ := got["error"].(map[string]any); code != 503 || e["code"] != "unavailable" {
		t.Fatalf("claim with an unwritable data dir = %d %v, want 503 unavailable", code, got)
	}
	if code, got := call(t, h, "GET", "/v1/witness", ""); code != 200 || len(got["grants"].([]any)) != 0 {
		t.Errorf("status after a refused grant = %d %v, want no grants", code, got)
	}
}

func TestAnUnreadableStateFileStopsTheWitness(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, StateFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(Config{DataDir: dir})
	if !errors.Is(err, ErrBadState) || !strings.Contains(err.Error(), "must not be deleted while a holder may still believe") {
		t.Errorf("Open with a corrupt state file = %v, want ErrBadState saying what to do", err)
	}
}

func TestClientAgainstTheService(t *testing.T) {
	s := openServer(t, t.TempDir(), newClock())
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	c := NewClient(ts.URL+"/", nil)
	ctx := t.Context()
	if a, err := c.Claim(ctx, "prod", "a", 3*time.Second); err != nil || !a.Granted || a.Holder != "a" || a.ExpiresIn != 3*time.Second {
		t.Errorf("a's claim = %+v, %v", a, err)
	}
	if a, err := c.Claim(ctx, "prod", "b", 3*time.Second); err != nil || a.Granted || a.Holder != "a" || a.ExpiresIn != 3*time.Second {
		t.Errorf("b's claim = %+v, %v; want refused, held by a", a, err)
	}
	if st, err := c.Status(ctx); err != nil || len(st.Grants) != 1 || st.Grants[0].Holder != "a" {
		t.Errorf("status = %+v, %v", st, err)
	}
	if err := c.Release(ctx, "prod", "a"); err != nil {
		t.Errorf("release: %v", err)
	}
	if a, err := c.Claim(ctx, "prod", "b", 3*time.Second); err != nil || !a.Granted {
		t.Errorf("b's claim after the release = %+v, %v", a, err)
	}
	if _, err := c.Claim(ctx, "", "b", time.Second); !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "name the cluster") {
		t.Errorf("claim without a cluster = %v, want ErrBadRequest from the service", err)
	}
	if _, err := c.Claim(ctx, "prod", "b", 1500*time.Microsecond); !errors.Is(err, ErrBadRequest) {
		t.Errorf("claim with a TTL of 1.5 ms = %v, want ErrBadRequest (the wire carries whole ms)", err)
	}
	ts.Close()
	if _, err := c.Claim(ctx, "prod", "b", time.Second); !errors.Is(err, ErrUnreachable) {
		t.Errorf("claim from a closed witness = %v, want ErrUnreachable", err)
	}
}

func TestServeStopsWithItsContext(t *testing.T) {
	s, err := Open(Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	c := NewClient("http://"+ln.Addr().String(), nil)
	if a, err := c.Claim(ctx, "prod", "a", 50*time.Millisecond); err != nil || !a.Granted {
		t.Fatalf("claim: %+v, %v", a, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve returned %v after its context ended", err)
	}
}

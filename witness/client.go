package witness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/batonhq/baton/witness/grants"
)

// ErrUnreachable is returned when the witness does not answer.
var ErrUnreachable = errors.New("witness: unreachable")

// Answer is the witness's answer to a claim.
type Answer struct {
	Granted bool
	// Holder holds the lease now (the claimant if Granted).
	Holder string
	// ExpiresIn is how long the witness keeps the lease for Holder unless
	// it is renewed or released, measured on the witness's clock.
	ExpiresIn time.Duration
}

// Witness is what a Holder needs from the witness service. Client talks to
// a real one over HTTP; Memory is its in-memory twin.
type Witness interface {
	// Claim asks for cluster's lease for holder for ttl, or renews it.
	Claim(ctx context.Context, cluster, holder string, ttl time.Duration) (Answer, error)
	// Release frees the lease if holder holds it.
	Release(ctx context.Context, cluster, holder string) error
}

// Client is a Witness over HTTP.
type Client struct {
	base string
	http *http.Client
}

// NewClient returns a client of the witness at url (e.g.
// http://127.0.0.1:7490). hc may be nil.
func NewClient(url string, hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: strings.TrimRight(url, "/"), http: hc}
}

// Claim asks for or renews cluster's lease; a refusal is an Answer, not an
// error.
func (c *Client) Claim(ctx context.Context, cluster, holder string, ttl time.Duration) (Answer, error) {
	if err := checkTTL(ttl); err != nil {
		return Answer{}, err
	}
	var resp ClaimResponse
	code, err := c.do(ctx, http.MethodPost, "/v1/witness/claim", ClaimRequest{Cluster: cluster, Holder: holder, TTLMS: ttl.Milliseconds()}, &resp, http.StatusOK, http.StatusConflict)
	if err != nil {
		return Answer{}, fmt.Errorf("claiming the witness lease of %q for %q: %w", cluster, holder, err)
	}
	if (code == http.StatusOK) != resp.Granted {
		return Answer{}, fmt.Errorf("claiming the witness lease of %q: status %d with granted=%v", cluster, code, resp.Granted)
	}
	return Answer{Granted: resp.Granted, Holder: resp.Holder, ExpiresIn: time.Duration(resp.ExpiresInMS) * time.Millisecond}, nil
}

// Release frees cluster's lease if holder holds it.
func (c *Client) Release(ctx context.Context, cluster, holder string) error {
	var resp ReleaseResponse
	if _, err := c.do(ctx, http.MethodPost, "/v1/witness/release", ReleaseRequest{Cluster: cluster, Holder: holder}, &resp, http.StatusOK); err != nil {
		return fmt.Errorf("releasing the witness lease of %q for %q: %w", cluster, holder, err)
	}
	return nil
}

// Status lists the witness's grants.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	if _, err := c.do(ctx, http.MethodGet, "/v1/witness", nil, &st, http.StatusOK); err != nil {
		return Status{}, fmt.Errorf("witness status: %w", err)
	}
	return st, nil
}

// do sends one request and decodes an expected answer into out; an error
// answer becomes an error wrapping ErrBadRequest or ErrUnavailable.
func (c *Client) do(ctx context.Context, method, path string, body, out any, want ...int) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%w at %s: %v", ErrUnreachable, c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return 0, fmt.Errorf("%w at %s: reading the answer: %v", ErrUnreachable, c.base, err)
	}
	for _, w := range want {
		if resp.StatusCode == w {
			if err := json.Unmarshal(b, out); err != nil {
				return 0, fmt.Errorf("witness at %s answered %d with %q: %v", c.base, resp.StatusCode, b, err)
			}
			return resp.StatusCode, nil
		}
	}
	var e Error
	_ = json.Unmarshal(b, &e)
	msg := e.Error.Message
	if msg == "" {
		msg = strings.TrimSpace(string(b))
	}
	switch {
	case resp.StatusCode == http.StatusBadRequest:
		return 0, fmt.Errorf("%w: %s", ErrBadRequest, msg)
	case resp.StatusCode == http.StatusServiceUnavailable:
		return 0, fmt.Errorf("%w: %s", ErrUnavailable, msg)
	default:
		return 0, fmt.Errorf("witness at %s answered %d: %s (is this a Baton witness?)", c.base, resp.StatusCode, msg)
	}
}

// checkTTL refuses a TTL the wire cannot carry exactly: rounded down to
// milliseconds, the witness would grant less than the holder believes.
func checkTTL(ttl time.Duration) error {
	if ttl < time.Millisecond || ttl > grants.MaxTTL || ttl%time.Millisecond != 0 {
		return fmt.Errorf("%w: ttl %s: want whole milliseconds, 1ms to %s", ErrBadRequest, ttl, grants.MaxTTL)
	}
	return nil
}

// Memory is the in-memory twin of a witness service: the same rules and the
// same persistence semantics (Restart keeps only what a real witness would
// have written), without HTTP or files.
type Memory struct {
	leases    *leases
	mu        sync.Mutex
	persisted []grants.Durable
	down      bool
}

// NewMemory returns an in-memory witness on the clock now (nil: time.Now,
// which testing/synctest fakes).
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	m := &Memory{}
	m.leases = newLeases(grants.New(), now, m.save, slog.New(slog.DiscardHandler))
	return m
}

func (m *Memory) save(recs []grants.Durable) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.persisted = recs
	return nil
}

// SetDown makes the witness unreachable (true) or reachable again.
func (m *Memory) SetDown(down bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.down = down
}

func (m *Memory) reachable() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return fmt.Errorf("%w: the in-memory witness is down", ErrUnreachable)
	}
	return nil
}

// Restart loses the witness's memory and restores its persisted grants, as
// a restarted `baton witness` does.
func (m *Memory) Restart() {
	m.mu.Lock()
	recs := m.persisted
	m.mu.Unlock()
	m.leases.mu.Lock()
	defer m.leases.mu.Unlock()
	t, err := grants.Restore(recs, m.leases.now())
	if err != nil {
		panic(fmt.Sprintf("witness.Memory: restoring what it saved itself: %v", err)) // cannot happen: save only gets valid records
	}
	m.leases.table = t
}

// Claim implements Witness.
func (m *Memory) Claim(_ context.Context, cluster, holder string, ttl time.Duration) (Answer, error) {
	if err := m.reachable(); err != nil {
		return Answer{}, err
	}
	if err := checkTTL(ttl); err != nil {
		return Answer{}, err
	}
	r, err := m.leases.claim(ClaimRequest{Cluster: cluster, Holder: holder, TTLMS: ttl.Milliseconds()})
	if err != nil {
		return Answer{}, err
	}
	return Answer{Granted: r.Granted, Holder: r.Holder, ExpiresIn: time.Duration(r.ExpiresInMS) * time.Millisecond}, nil
}

// Release implements Witness.
func (m *Memory) Release(_ context.Context, cluster, holder string) error {
	if err := m.reachable(); err != nil {
		return err
	}
	_, err := m.leases.release(ReleaseRequest{Cluster: cluster, Holder: holder})
	return err
}

// Grants lists the unexpired grants.
func (m *Memory) Grants() []GrantView { return m.leases.status().Grants }

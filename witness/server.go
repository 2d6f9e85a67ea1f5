package witness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/batonhq/baton/witness/grants"
)

// Config configures a Server.
type Config struct {
	// DataDir holds the state file; it is created if missing.
	DataDir string
	Logger  *slog.Logger
	// Now is the witness's clock (default time.Now, whose monotonic reading
	// keeps expiries immune to wall-clock steps).
	Now func() time.Time
}

// Server is the witness service.
type Server struct {
	cfg    Config
	leases *leases
	log    *slog.Logger
}

// Open loads the persisted grants from cfg.DataDir and honours each for its
// full TTL from now: the witness may have been down for any time and its
// wall clock may have stepped, so the only bound it knows on a holder's
// belief formed before the restart is "at most one TTL after the witness's
// last answer", which lies before now + TTL.
func Open(cfg Config) (*Server, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("witness data dir: %w (choose another with --data-dir)", err)
	}
	recs, err := readState(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	now := cfg.Now()
	table, err := grants.Restore(recs, now)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadState, err)
	}
	for _, g := range table.Grants(now) {
		cfg.Logger.Info("honouring a grant from before the restart for its full TTL", "cluster", g.Cluster, "holder", g.Holder, "ttl", g.TTL)
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	s.leases = newLeases(table, cfg.Now, func(recs []grants.Durable) error { return writeState(cfg.DataDir, recs) }, cfg.Logger)
	return s, nil
}

// Handler returns the HTTP API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/witness/claim", s.handleClaim)
	mux.HandleFunc("/v1/witness/release", s.handleRelease)
	mux.HandleFunc("/v1/witness", s.handleStatus)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no such path %q: the witness serves POST /v1/witness/claim, POST /v1/witness/release and GET /v1/witness", r.URL.Path))
	})
	return mux
}

// Serve answers on ln and removes expired grants from the state file until
// ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	sweepDone := make(chan struct{})
	sweepCtx, stopSweep := context.WithCancel(ctx)
	go func() { defer close(sweepDone); s.sweepLoop(sweepCtx) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	stopSweep()
	<-sweepDone
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if serr := srv.Shutdown(shutdownCtx); serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		s.log.Warn("witness HTTP shutdown", "err", serr)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// sweepLoop keeps the state file to the grants that can still be
// believed, so that a restart honours only those.
func (s *Server) sweepLoop(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.leases.changed:
		}
		next, ok := s.leases.sweep()
		wait := time.Hour
		if ok {
			wait = max(next.Sub(s.cfg.Now()), time.Millisecond)
		}
		t.Reset(wait) // since Go 1.23 a reset timer never delivers a stale tick
	}
}

func (s *Server) handleClaim(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodPost) {
		return
	}
	req, err := DecodeClaim(r.Body) // reads at most maxBody+1 bytes
	if err != nil {
		writeErr(w, err)
		return
	}
	resp, err := s.leases.claim(req)
	if err != nil {
		writeErr(w, err)
		return
	}
	code := http.StatusOK
	if !resp.Granted {
		code = http.StatusConflict
	}
	writeJSON(w, code, resp)
}

func (s *Server) handleRelease(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodPost) {
		return
	}
	req, err := DecodeRelease(r.Body)
	if err != nil {
		writeErr(w, err)
		return
	}
	resp, err := s.leases.release(req)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodGet) {
		return
	}
	writeJSON(w, http.StatusOK, s.leases.status())
}

func allow(w http.ResponseWriter, r *http.Request, method string) bool {
	if r.Method == method {
		return true
	}
	w.Header().Set("Allow", method)
	writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", fmt.Sprintf("%s %s: use %s", r.Method, r.URL.Path, method))
	return false
}

func writeErr(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrBadRequest):
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
	case errors.Is(err, ErrUnavailable):
		writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error()+" (the witness cannot write its data dir; retry, or fix its disk)")
	default:
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
	}
}

func writeError(w http.ResponseWriter, code int, short, msg string) {
	writeJSON(w, code, Error{Error: ErrorDetail{Code: short, Message: msg}})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

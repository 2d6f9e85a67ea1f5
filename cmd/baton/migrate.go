package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/batonhq/baton/scheduler"
)

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("migrate", "WORKLOAD [--to NODE] [--mode MODE]", `Move a running workload (by name or id) to another node, alive: CRIU freezes it,
its memory moves, and it continues on the target where it was. Without --to,
placement picks the target. Waits for the end and prints the frozen time.
If anything fails before the target confirms, the workload keeps running on
its node, exactly once, and the reason is printed. Post-copy restores the
target before the memory has arrived (shortest freeze); the source stays frozen
until the last page is there, and a failure until then still rolls back.`, stderr)
	api := fs.String("api", defaultAPI(), "URL of the REST API (or set BATON_API)")
	to := fs.String("to", "", "target node (default: placement chooses)")
	mode := fs.String("mode", "auto", "auto, stop-copy, pre-copy (refused: no soft-dirty tracking on Baton's kernels) or post-copy (lazy pages); auto picks post-copy only on a server run with --allow-post-copy")
	wait := fs.Duration("wait", 10*time.Minute, "how long to wait for the migration to end (0: do not wait)")
	// The workload comes first, then flags (baton migrate web --to n2).
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return errUsage
		}
		fmt.Fprintln(stderr, "baton migrate: name the workload to move, e.g. baton migrate web --to node-2")
		fs.Usage()
		return errUsage
	}
	workload := args[0]
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	c := apiClient{base: strings.TrimRight(*api, "/"), http: &http.Client{Timeout: 30 * time.Second}}
	body, _ := json.Marshal(scheduler.MigrationRequest{To: *to, Mode: *mode})
	var m scheduler.MigrationView
	if err := c.post(ctx, "/v1/workloads/"+url.PathEscape(workload)+"/migrate", body, &m); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "migration %s: %s from %s to %s, mode %s (%s)\n", m.ID, m.WorkloadName, m.Source, m.Target, m.Mode, m.ModeReason)
	if *wait == 0 {
		return nil
	}
	deadline := time.Now().Add(*wait)
	last := ""
	for m.EndedAt.IsZero() {
		if m.State != last {
			fmt.Fprintf(stdout, "  %s\n", m.State)
			last = m.State
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("migration %s still in %s after %s: follow it with GET /v1/migrations/%s", m.ID, m.State, *wait, m.ID)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped waiting; migration %s goes on (GET /v1/migrations/%s)", m.ID, m.ID)
		case <-time.After(100 * time.Millisecond):
		}
		if err := c.get(ctx, "/v1/migrations/"+m.ID, &m); err != nil {
			return err
		}
	}
	switch m.State {
	case "done":
		fmt.Fprintf(stdout, "done: %s runs on %s (pid %d); frozen %.0f ms, total %.0f ms, %s moved\n",
			m.WorkloadName, m.Target, m.TargetPID, m.FrozenMS, m.TotalMS, humanBytes(m.BytesMoved))
		return nil
	default:
		return fmt.Errorf("migration %s failed and was rolled back: %s still runs on %s (frozen %.0f ms): %s",
			m.ID, m.WorkloadName, m.Source, m.FrozenMS, m.Reason)
	}
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// post sends a JSON body and decodes the answer (see get).
func (c apiClient) post(ctx context.Context, path string, body []byte, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("bad API URL %q: %w", c.base, err)
	}
	req.Header.Set("Content-Type", "application/json")
	return c.do(req, path, into)
}

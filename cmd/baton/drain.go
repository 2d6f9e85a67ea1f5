package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/batonhq/baton/scheduler"
)

func nodeDrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("node drain", "NAME [--wait DURATION] [flags]", `Drain a node for maintenance: placement stops choosing it, and the rebalancer
moves every workload off it by live migration (CRIU), within the migration
budgets, restarting a workload on another node only where live migration is
impossible (no CRIU, or it failed twice). Waits until the node runs nothing,
printing each move; the drain stays (across server restarts) until
'baton node undrain NAME'.`, stderr)
	wait := fs.Duration("wait", 30*time.Minute, "how long to wait for the node to empty (0: do not wait)")
	c, pos, err := verbFlags(fs, args, 1, "the node's name, e.g. baton node drain node-2")
	if err != nil {
		return err
	}
	name := pos[0]
	var n scheduler.NodeView
	if err := c.send(ctx, http.MethodPost, "/v1/nodes/"+url.PathEscape(name)+"/drain", nil, &n); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "node %s: %s, %d workloads on it\n", n.Name, n.Drain, n.Workloads)
	if *wait == 0 {
		return nil
	}
	deadline := time.Now().Add(*wait)
	seen := map[string]bool{}
	for {
		var ev struct {
			Events []scheduler.RebalanceEvent `json:"events"`
		}
		if err := c.get(ctx, "/v1/rebalance/events", &ev); err != nil {
			return err
		}
		for _, e := range ev.Events {
			key := e.At.String() + e.Kind + e.Workload
			if seen[key] || (e.From != name && e.Node != name) || e.Kind == scheduler.EventDrain {
				continue
			}
			seen[key] = true
			fmt.Fprintf(stdout, "  %s %s\n", e.Kind, describeEvent(e))
		}
		if err := c.get(ctx, "/v1/nodes/"+url.PathEscape(name), &n); err != nil {
			return err
		}
		if n.Drain == "" {
			return fmt.Errorf("node %s was undrained while waiting", name)
		}
		if n.Workloads == 0 {
			fmt.Fprintf(stdout, "node %s is drained: it runs nothing and takes no workloads ('baton node undrain %s' to undo)\n", name, name)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s still runs %d workloads after %s: see GET /v1/rebalance/plan for why", name, n.Workloads, *wait)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped waiting; the drain of %s goes on (baton status)", name)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// describeEvent is a rebalancing event's one-line summary for the terminal.
func describeEvent(e scheduler.RebalanceEvent) string {
	var b strings.Builder
	if e.WorkloadName != "" {
		fmt.Fprintf(&b, "%s ", e.WorkloadName)
	}
	if e.From != "" || e.To != "" {
		fmt.Fprintf(&b, "%s → %s ", e.From, e.To)
	}
	if e.Migration != "" {
		fmt.Fprintf(&b, "(%s) ", e.Migration)
	}
	b.WriteString(e.Reason)
	return b.String()
}

func nodeUndrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("node undrain", "NAME [flags]", `Let a drained node take new workloads again. Workloads that left it stay
where they went.`, stderr)
	c, pos, err := verbFlags(fs, args, 1, "the node's name, e.g. baton node undrain node-2")
	if err != nil {
		return err
	}
	var n scheduler.NodeView
	if err := c.send(ctx, http.MethodPost, "/v1/nodes/"+url.PathEscape(pos[0])+"/undrain", nil, &n); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "node %s takes workloads again (%s, %d workloads)\n", n.Name, n.State, n.Workloads)
	return nil
}

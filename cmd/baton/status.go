package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/batonhq/baton/scheduler"
	"github.com/batonhq/baton/scheduler/store"
)

func defaultAPI() string {
	if v := os.Getenv("BATON_API"); v != "" {
		return v
	}
	return "http://127.0.0.1:7480"
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("status", "[--api URL]", `Show the cluster like crm_mon: every node with its state and headroom bars,
every workload with its node and state, migrations, the quorum with each
node's votes, and the resource groups with where they run and why.`, stderr)
	api := fs.String("api", defaultAPI(), "URL of the REST API (or set BATON_API)")
	if err := parse(fs, args); err != nil {
		return err
	}
	c := apiClient{base: strings.TrimRight(*api, "/"), http: &http.Client{Timeout: 10 * time.Second}}
	var nodes struct {
		Nodes []scheduler.NodeView `json:"nodes"`
	}
	var workloads struct {
		Workloads []store.Workload `json:"workloads"`
	}
	var health struct {
		Leader     bool   `json:"leader"`
		Epoch      uint64 `json:"epoch"`
		LeaderName string `json:"leader_name"`
	}
	if err := c.get(ctx, "/v1/health", &health); err != nil {
		return err
	}
	if err := c.get(ctx, "/v1/nodes", &nodes); err != nil {
		return err
	}
	if err := c.get(ctx, "/v1/workloads", &workloads); err != nil {
		return err
	}
	var migrations struct {
		Migrations []scheduler.MigrationView `json:"migrations"`
	}
	if err := c.get(ctx, "/v1/migrations", &migrations); err != nil {
		return err
	}
	leadership := fmt.Sprintf("this server leads (epoch %d)", health.Epoch)
	if !health.Leader {
		leadership = "this server follows; leader: " + cmp.Or(health.LeaderName, "none elected yet")
	}
	renderStatus(stdout, c.base, leadership, time.Now(), nodes.Nodes, workloads.Workloads)
	renderMigrations(stdout, migrations.Migrations)
	if !health.Leader {
		fmt.Fprintln(stdout, "\nGroups and quorum: ask the leader's API.")
		return nil
	}
	var q scheduler.QuorumView
	var groups struct {
		Groups []scheduler.GroupView `json:"groups"`
	}
	if err := c.get(ctx, "/v1/quorum", &q); err != nil {
		return err
	}
	if err := c.get(ctx, "/v1/groups", &groups); err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	renderQuorum(stdout, q)
	fmt.Fprintln(stdout)
	renderGroups(stdout, groups.Groups)
	return nil
}

// apiClient is the CLI's small client of the REST API.
type apiClient struct {
	base string
	http *http.Client
}

func (c apiClient) get(ctx context.Context, path string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return fmt.Errorf("bad API URL %q: %w", c.base, err)
	}
	return c.do(req, path, into)
}

// do sends req and decodes a 2xx answer into into; an error answer becomes
// an error carrying the API's message.
func (c apiClient) do(req *http.Request, path string, into any) error {
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the Baton API at %s: %w (is 'baton server' or 'baton dev' running? set --api or BATON_API)", c.base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
			return fmt.Errorf("%s (%s)", e.Error.Message, e.Error.Code)
		}
		return fmt.Errorf("%s: HTTP %s", path, resp.Status)
	}
	if err := json.Unmarshal(body, into); err != nil {
		return fmt.Errorf("%s: unexpected answer (is %s a Baton API?): %w", path, c.base, err)
	}
	return nil
}

// renderStatus draws the cluster as text. It is pure so it can be tested
// against golden output.
func renderStatus(w io.Writer, api, leadership string, now time.Time, nodes []scheduler.NodeView, workloads []store.Workload) {
	running := 0
	for _, n := range nodes {
		if n.State == "running" {
			running++
		}
	}
	fmt.Fprintf(w, "Cluster %s: %d nodes (%d running), %d workloads; %s\n\n", api, len(nodes), running, len(workloads), leadership)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATE\tCPU USED\tMEMORY USED\tLOAD1\tRESERVED\tWORKLOADS\tLAST HEARTBEAT")
	for _, n := range nodes {
		state := n.State
		if n.Drain != "" {
			state += " (" + n.Drain + ")"
		}
		cpuUsed := 1 - ratio(n.Headroom.CPUMillis, n.Capacity.CPUMillis)
		memUsed := 1 - ratio(n.Headroom.MemoryMB, n.Capacity.MemoryMB)
		fmt.Fprintf(tw, "%s\t%s\t%s %3.0f%% of %d\t%s %s/%s\t%.2f\t%dm %s\t%d\t%s ago\n",
			n.Name, state,
			bar(cpuUsed), cpuUsed*100, n.Capacity.CPUs,
			bar(memUsed), gib(n.Capacity.MemoryMB-n.Headroom.MemoryMB), gib(n.Capacity.MemoryMB),
			n.Headroom.Load1, n.Reserved.CPUMillis, mib(n.Reserved.MemoryMB), n.Workloads,
			now.Sub(n.LastHeartbeat).Round(100*time.Millisecond))
	}
	if len(nodes) == 0 {
		fmt.Fprintln(tw, "(no nodes yet: start agents with 'baton agent --nats URL --name NAME')")
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKLOAD\tID\tNODE\tSTATE\tHOST PID\tREQUESTS\tCOMMAND")
	for _, wl := range workloads {
		state := wl.State
		if wl.Desired == store.DesiredDeleted {
			state += " (deleting)"
		}
		if wl.ExitCode != nil {
			state += fmt.Sprintf(" (exit %d)", *wl.ExitCode)
		}
		pid := "-"
		if wl.HostPID > 0 {
			pid = fmt.Sprint(wl.HostPID)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%dm %s\t%s\n", wl.Name, wl.ID, wl.Node, state, pid,
			wl.Resources.CPUMillis, mib(wl.Resources.MemoryMB), shorten(strings.Join(wl.Command, " "), 40))
	}
	if len(workloads) == 0 {
		fmt.Fprintln(tw, "(no workloads: POST one to /v1/workloads)")
	}
	_ = tw.Flush()
}

func ratio(part, whole int64) float64 {
	if whole <= 0 {
		return 0
	}
	r := float64(part) / float64(whole)
	return min(max(r, 0), 1)
}

// bar draws a 10-cell gauge of a fraction in [0,1].
func bar(frac float64) string {
	n := int(frac*10 + 0.5)
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", 10-n) + "]"
}

func gib(mb int64) string { return fmt.Sprintf("%.1fG", float64(mb)/1024) }

func mib(mb int64) string {
	if mb >= 1024 && mb%1024 == 0 {
		return fmt.Sprintf("%dGi", mb/1024)
	}
	return fmt.Sprintf("%dMi", mb)
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

// renderMigrations lists the migrations in flight, and the last few that
// ended.
func renderMigrations(w io.Writer, ms []scheduler.MigrationView) {
	var show []scheduler.MigrationView
	ended := 0
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].EndedAt.IsZero() {
			show = append(show, ms[i])
		} else if ended < 3 {
			show = append(show, ms[i])
			ended++
		}
	}
	if len(show) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MIGRATION\tWORKLOAD\tFROM\tTO\tMODE\tSTATE\tFROZEN\tREASON")
	for _, m := range show {
		frozen := "-"
		if m.FrozenMS > 0 {
			frozen = fmt.Sprintf("%.0f ms", m.FrozenMS)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, m.WorkloadName, m.Source, m.Target, m.Mode, m.State, frozen, shorten(m.Reason, 50))
	}
	_ = tw.Flush()
}

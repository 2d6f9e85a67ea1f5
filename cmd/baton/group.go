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
	"os"
	"strings"
	"time"

	"github.com/batonhq/baton/scheduler"
)

// subcommand is one verb of a command group (baton group create, ...).
type subcommand struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// runSubcommands dispatches `baton GROUP VERB ...` to verbs, each of which
// parses its own flags (with --api) and gets an API client.
func runSubcommands(ctx context.Context, group, summary string, verbs []subcommand, args []string, stdout, stderr io.Writer) error {
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: baton %s VERB [flags]\n\n%s\n\nVerbs:\n", group, summary)
		for _, v := range verbs {
			fmt.Fprintf(w, "  %-8s %s\n", v.name, v.summary)
		}
		fmt.Fprintf(w, "\nRun 'baton %s VERB --help' for a verb's flags.\n", group)
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) == 0 {
			usage(stderr)
			return errUsage
		}
		usage(stdout)
		return flag.ErrHelp
	}
	for _, v := range verbs {
		if v.name == args[0] {
			return v.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "baton %s: unknown verb %q\n\n", group, args[0])
	usage(stderr)
	return errUsage
}

// verbFlags parses a verb's flags and positional arguments: exactly nargs
// of them (names first, flags after, as in 'baton group move db node-2').
func verbFlags(fs *flag.FlagSet, args []string, nargs int, what string) (apiClient, []string, error) {
	api := fs.String("api", defaultAPI(), "URL of the REST API (or set BATON_API)")
	var pos []string
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") && len(pos) < nargs {
		pos, args = append(pos, args[0]), args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return apiClient{}, nil, err
		}
		return apiClient{}, nil, errUsage
	}
	pos = append(pos, fs.Args()...)
	if len(pos) != nargs {
		fmt.Fprintf(fs.Output(), "%s: give %s\n", fs.Name(), what)
		fs.Usage()
		return apiClient{}, nil, errUsage
	}
	return apiClient{base: strings.TrimRight(*api, "/"), http: &http.Client{Timeout: 30 * time.Second}}, pos, nil
}

// send is a request with any method and an optional JSON body.
func (c apiClient) send(ctx context.Context, method, path string, body any, into any) error {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return fmt.Errorf("bad API URL %q: %w", c.base, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.do(req, path, into)
}

var groupVerbs = []subcommand{
	{"create", "create a resource group (one process, or a JSON spec with -f)", groupCreate},
	{"list", "list the resource groups with their state and node", groupList},
	{"show", "show one group: resources, failures, reason", groupShow},
	{"delete", "stop a group's resources in reverse order and forget it", groupDelete},
	{"move", "move a group to a node (or clear a move with \"\")", groupMove},
	{"reset", "forget a group's failures on a node (every node if none)", groupReset},
}

func runGroup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runSubcommands(ctx, "group", `Resource groups: resources that run together on one node, started in order
and stopped in reverse. When a group's node dies it is fenced, then the group
restarts on the next allowed node; a failing resource is restarted in place,
then the group fails over.`, groupVerbs, args, stdout, stderr)
}

func groupCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("group create", "NAME [flags] -- COMMAND [ARG...]  |  -f FILE", `Create a resource group. The short form makes a group of one process
resource named after the group:
  baton group create web --nodes n1,n2 --monitor 'curl -sf localhost:8080' -- /usr/bin/python3 -m http.server 8080
With -f, FILE (or - for stdin) holds the whole group as JSON, the body of
POST /v1/groups, for groups of several resources:
  {"name":"db","nodes":["n1","n2"],"resources":[{"name":"ip","command":[...]},{"name":"pg","command":[...],
   "monitor":{"command":[...],"interval":"2s","timeout":"1s","restarts":2}}]}`, stderr)
	file := fs.String("f", "", "a JSON group spec (- for stdin)")
	nodes := fs.String("nodes", "", "allowed nodes, most preferred first, comma-separated (default: every node)")
	failback := fs.String("failback", "manual", "manual or auto: return to a more preferred node when it comes back")
	monitor := fs.String("monitor", "", "a health check command line, run with sh -c on the node")
	interval := fs.String("monitor-interval", "2s", "how often the check runs")
	timeout := fs.String("monitor-timeout", "1s", "a check slower than this failed")
	restarts := fs.Int("restarts", 0, "failures restarted in place before the group fails over")
	var command []string
	for i, a := range args {
		if a == "--" {
			args, command = args[:i], args[i+1:]
			break
		}
	}
	want := 0 // the name, unless the spec comes from -f
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		want = 1
	}
	c, pos, err := verbFlags(fs, args, want, "the group's name, e.g. baton group create web -- /usr/bin/sleep inf")
	if err != nil {
		return err
	}
	var req scheduler.GroupRequest
	switch {
	case *file != "":
		if len(pos) > 0 || len(command) > 0 {
			return errors.New("-f takes the whole group from the file: give no name or command with it")
		}
		data, err := readFileOrStdin(*file)
		if err != nil {
			return err
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return fmt.Errorf("%s: not a group spec: %w", *file, err)
		}
	case len(pos) == 0:
		fmt.Fprintln(stderr, "baton group create: give the group's name and its command after --, or -f FILE")
		fs.Usage()
		return errUsage
	case len(command) == 0:
		return fmt.Errorf("group %q: give the command to run after --, e.g. baton group create %s -- /usr/bin/sleep inf", pos[0], pos[0])
	default:
		req = scheduler.GroupRequest{Name: pos[0], Failback: *failback, Resources: []scheduler.ResourceRequest{{Name: pos[0], Command: command}}}
		if *nodes != "" {
			req.Nodes = strings.Split(*nodes, ",")
		}
		if *monitor != "" || *restarts > 0 {
			m := &scheduler.MonitorRequest{Interval: *interval, Timeout: *timeout, Restarts: *restarts}
			if *monitor != "" {
				m.Command = []string{"/bin/sh", "-c", *monitor}
			}
			req.Resources[0].Monitor = m
		}
	}
	var g scheduler.GroupView
	if err := c.send(ctx, http.MethodPost, "/v1/groups", req, &g); err != nil {
		return err
	}
	printGroup(stdout, g)
	return nil
}

func readFileOrStdin(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(os.Stdin)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("reading the group spec: %w", err)
	}
	return data, nil
}

func groupList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("group list", "[flags]", "List the resource groups with their state, node and reason.", stderr)
	c, _, err := verbFlags(fs, args, 0, "no arguments")
	if err != nil {
		return err
	}
	var list struct {
		Groups []scheduler.GroupView `json:"groups"`
	}
	if err := c.get(ctx, "/v1/groups", &list); err != nil {
		return err
	}
	renderGroups(stdout, list.Groups)
	return nil
}

// renderGroups prints one line per group (also used by baton status).
func renderGroups(w io.Writer, gs []scheduler.GroupView) {
	if len(gs) == 0 {
		fmt.Fprintln(w, "no resource groups (create one with 'baton group create')")
		return
	}
	fmt.Fprintf(w, "%-16s %-10s %-12s %s\n", "GROUP", "STATE", "NODE", "REASON")
	for _, g := range gs {
		node := g.Node
		if node == "" {
			node = "-"
		}
		fmt.Fprintf(w, "%-16s %-10s %-12s %s\n", g.Name, g.State, node, g.Reason)
	}
}

func printGroup(w io.Writer, g scheduler.GroupView) {
	node := g.Node
	if node == "" {
		node = "-"
	}
	fmt.Fprintf(w, "group %s: %s on %s (%s)\n", g.Name, g.State, node, g.Reason)
	allowed := "every node"
	if len(g.Nodes) > 0 {
		allowed = strings.Join(g.Nodes, ", ")
	}
	fmt.Fprintf(w, "  nodes: %s; failback %s\n", allowed, g.Failback)
	for _, r := range g.Resources {
		fmt.Fprintf(w, "  %-12s %-9s %s (workload %s)\n", r.Name, r.State, strings.Join(r.Command, " "), r.Workload)
	}
	for n, f := range g.Failures {
		fmt.Fprintf(w, "  failures on %s: %d\n", n, f)
	}
}

func groupShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("group show", "NAME [flags]", "Show one resource group: its resources and their states, failures per node, and why it is where it is.", stderr)
	c, pos, err := verbFlags(fs, args, 1, "the group's name")
	if err != nil {
		return err
	}
	var g scheduler.GroupView
	if err := c.get(ctx, "/v1/groups/"+url.PathEscape(pos[0]), &g); err != nil {
		return err
	}
	printGroup(stdout, g)
	return nil
}

func groupDelete(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("group delete", "NAME [flags]", "Stop a group's resources in reverse order, then forget the group.", stderr)
	c, pos, err := verbFlags(fs, args, 1, "the group's name")
	if err != nil {
		return err
	}
	var g scheduler.GroupView
	if err := c.send(ctx, http.MethodDelete, "/v1/groups/"+url.PathEscape(pos[0]), nil, &g); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "group %s: %s (%s)\n", g.Name, g.State, g.Reason)
	return nil
}

func groupMove(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("group move", "NAME NODE [flags]", `Move a group to NODE: its resources stop in reverse on their node and start
in order there. NODE "" clears an earlier move.`, stderr)
	c, pos, err := verbFlags(fs, args, 2, "the group's name and the node, e.g. baton group move db node-2")
	if err != nil {
		return err
	}
	var g scheduler.GroupView
	if err := c.send(ctx, http.MethodPost, "/v1/groups/"+url.PathEscape(pos[0])+"/move", map[string]string{"node": pos[1]}, &g); err != nil {
		return err
	}
	printGroup(stdout, g)
	return nil
}

func groupReset(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("group reset", "NAME [--node NODE] [flags]", "Forget a group's failures on a node (every node without --node), so it may run there again.", stderr)
	node := fs.String("node", "", "the node whose failures to forget (default: every node)")
	c, pos, err := verbFlags(fs, args, 1, "the group's name")
	if err != nil {
		return err
	}
	var g scheduler.GroupView
	if err := c.send(ctx, http.MethodPost, "/v1/groups/"+url.PathEscape(pos[0])+"/reset", map[string]string{"node": *node}, &g); err != nil {
		return err
	}
	printGroup(stdout, g)
	return nil
}

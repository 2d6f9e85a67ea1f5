package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/batonhq/baton/scheduler"
)

// nodeVerbs are the operator's commands on one node.
var nodeVerbs = []subcommand{
	{"drain", "stop placing workloads on a node and move every workload off it, live (see drain.go)", nodeDrain},
	{"undrain", "let a drained node take workloads again", nodeUndrain},
	{"fence", "power a node off through its fence devices (or confirm it is off)", nodeFence},
	{"votes", "change a node's quorum votes at run time", nodeVotes},
}

func runNode(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runSubcommands(ctx, "node", "Operate on one node of the cluster.", nodeVerbs, args, stdout, stderr)
}

func nodeFence(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("node fence", "NAME [--confirm-off] [flags]", `Fence NAME now: the server powers it off through its fence levels, in order,
and its groups restart elsewhere once a device confirms it off. Follow the
attempts with 'baton status' or GET /v1/events.
With --confirm-off nothing is fenced: you vouch that the node is already off
(powered down by hand), which lets its groups recover. Be sure: a node that is
in fact running keeps its processes, and its groups would then run twice.`, stderr)
	confirm := fs.Bool("confirm-off", false, "record that the node is off instead of fencing it")
	c, pos, err := verbFlags(fs, args, 1, "the node's name")
	if err != nil {
		return err
	}
	var ans struct {
		Message string `json:"message"`
	}
	if err := c.send(ctx, http.MethodPost, "/v1/nodes/"+url.PathEscape(pos[0])+"/fence", map[string]bool{"confirm_off": *confirm}, &ans); err != nil {
		return err
	}
	fmt.Fprintln(stdout, ans.Message)
	return nil
}

func nodeVotes(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("node votes", "NAME VOTES [flags]", `Give NAME VOTES quorum votes (default 1; 0 keeps the node without a say).
The change is persisted and applies at once; prints the quorum after it.`, stderr)
	c, pos, err := verbFlags(fs, args, 2, "the node's name and its votes, e.g. baton node votes n1 2")
	if err != nil {
		return err
	}
	votes, err := strconv.Atoi(pos[1])
	if err != nil {
		return fmt.Errorf("votes %q is not a whole number", pos[1])
	}
	var q scheduler.QuorumView
	if err := c.send(ctx, http.MethodPut, "/v1/nodes/"+url.PathEscape(pos[0])+"/votes", map[string]int{"votes": votes}, &q); err != nil {
		return err
	}
	renderQuorum(stdout, q)
	return nil
}

// renderQuorum prints the quorum in one line and the votes per node.
func renderQuorum(w io.Writer, q scheduler.QuorumView) {
	state := "quorate"
	if !q.Quorate {
		state = "NOT QUORATE: groups are stopped and nothing starts"
	}
	witness := ""
	if q.WitnessVotes > 0 {
		witness = fmt.Sprintf(", witness %s", map[bool]string{true: "granted", false: "not granted"}[q.Witness])
	}
	fmt.Fprintf(w, "quorum: %s (%d of %d votes, %d needed%s)\n", state, q.LiveVotes, q.ExpectedVotes, q.Needed, witness)
	for _, n := range q.Nodes {
		live := "live"
		if !n.Live {
			live = "lost"
		}
		fmt.Fprintf(w, "  %-12s %d vote(s), %s\n", n.Node, n.Votes, live)
	}
}

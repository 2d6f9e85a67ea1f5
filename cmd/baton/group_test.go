package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/failover/membership"
	"github.com/batonhq/baton/scheduler"
	"github.com/batonhq/baton/scheduler/httpapi"
	"github.com/batonhq/baton/scheduler/store"
	"github.com/batonhq/baton/wire"
)

func TestEveryVerbHasHelp(t *testing.T) {
	for _, g := range []struct {
		name  string
		verbs []subcommand
	}{{"group", groupVerbs}, {"node", nodeVerbs}} {
		for _, v := range g.verbs {
			t.Run(g.name+" "+v.name, func(t *testing.T) {
				var out, errOut bytes.Buffer
				if code := run([]string{g.name, v.name, "--help"}, &out, &errOut); code != 0 {
					t.Fatalf("exit %d\n%s%s", code, out.String(), errOut.String())
				}
				if help := out.String() + errOut.String(); !strings.Contains(help, "Usage: baton "+g.name+" "+v.name) {
					t.Errorf("no usage:\n%s", help)
				}
			})
		}
	}
	var errOut bytes.Buffer
	if code := run([]string{"group", "frobnicate"}, &errOut, &errOut); code != 2 || !strings.Contains(errOut.String(), `unknown verb "frobnicate"`) {
		t.Errorf("unknown verb: exit %d\n%s", code, errOut.String())
	}
}

// TestGroupCommandsAgainstTheAPI drives the CLI against a real scheduler and
// API handler on in-memory agents.
func TestGroupCommandsAgainstTheAPI(t *testing.T) {
	srv := scheduler.New(scheduler.Config{Store: store.NewMemory(), Agents: scheduler.NewMemoryAgents(), Membership: membership.DefaultConfig()})
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		for _, n := range []string{"n1", "n2", "n3"} {
			srv.HandleHeartbeat(context.Background(), wire.Heartbeat{V: 1, Node: n, IntervalMS: 1000, SentAt: time.Now(),
				Capacity: wire.Capacity{CPUMillis: 4000, MemoryMB: 8192}, Headroom: wire.Headroom{CPUMillis: 4000, MemoryMB: 8192}})
		}
	}
	api := httptest.NewServer(httpapi.Handler(srv, nil))
	defer api.Close()
	baton := func(args ...string) (string, int) {
		var out bytes.Buffer
		code := run(append(args, "--api", api.URL), &out, &out)
		return out.String(), code
	}
	// The flags go before "--": the command after it is the process's.
	var out bytes.Buffer
	code := run([]string{"group", "create", "web", "--api", api.URL, "--nodes", "n2,n1", "--monitor", "true", "--restarts", "2", "--", "/bin/sleep", "inf"}, &out, &out)
	if code != 0 || !strings.Contains(out.String(), "group web: starting on n2") {
		t.Fatalf("create: exit %d\n%s", code, out.String())
	}
	spec := filepath.Join(t.TempDir(), "db.json")
	os.WriteFile(spec, []byte(`{"name":"db","nodes":["n1","n3"],"resources":[{"name":"ip","command":["/bin/sleep","inf"]},{"name":"pg","command":["/bin/sleep","inf"]}]}`), 0o600)
	if got, code := baton("group", "create", "-f", spec); code != 0 || !strings.Contains(got, "group db:") {
		t.Fatalf("create -f: exit %d\n%s", code, got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, _ := baton("group", "list")
		if strings.Count(got, "running") == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("groups not running:\n%s", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got, code := baton("group", "show", "db"); code != 0 || !strings.Contains(got, "ip           started") || !strings.Contains(got, "grp_db_pg") {
		t.Errorf("show: exit %d\n%s", code, got)
	}
	if got, code := baton("group", "move", "db", "n2"); code != 1 || !strings.Contains(got, "move to n2 refused") {
		t.Errorf("move to a node the group may not use: exit %d\n%s", code, got)
	}
	if got, code := baton("group", "move", "db", "n3"); code != 0 || !strings.Contains(got, "moved by user") {
		t.Errorf("move: exit %d\n%s", code, got)
	}
	if got, code := baton("node", "votes", "n1", "2"); code != 0 || !strings.Contains(got, "quorum: quorate (4 of 4 votes, 3 needed)") {
		t.Errorf("votes: exit %d\n%s", code, got)
	}
	if got, code := baton("node", "votes", "n1", "many"); code != 1 || !strings.Contains(got, `votes "many" is not a whole number`) {
		t.Errorf("bad votes: exit %d\n%s", code, got)
	}
	if got, code := baton("group", "delete", "web"); code != 0 || !strings.Contains(got, "group web: stopping") {
		t.Errorf("delete: exit %d\n%s", code, got)
	}
	if got, code := baton("group", "show", "nope"); code != 1 || !strings.Contains(got, `group "nope"`) {
		t.Errorf("show unknown: exit %d\n%s", code, got)
	}
	if got, code := baton("node", "fence", "n9"); code != 1 || !strings.Contains(got, "never been seen") {
		t.Errorf("fence unknown: exit %d\n%s", code, got)
	}
	if got, code := baton("group", "create", "x"); code != 1 || !strings.Contains(got, "give the command to run after --") {
		t.Errorf("create without command: exit %d\n%s", code, got)
	}
}

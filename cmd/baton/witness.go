package main

import (
	"context"
	"fmt"
	"io"
	"net"

	"github.com/batonhq/baton/witness"
)

func runWitness(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("witness", "[flags]", `Run a quorum witness: it hands one lease per cluster name to at most one
holder at a time, so that in a two-node cluster only one partition gets the
witness's vote. Run it on a third machine that both halves can reach.

Grants are written to --data-dir before they are answered; a restarted
witness honours every grant it had for that grant's full TTL, so a holder
that still believes in a grant is never joined by a second one.`, stderr)
	listen := fs.String("listen", "127.0.0.1:7490", "address of the witness's HTTP API")
	dataDir := fs.String("data-dir", "/var/lib/baton/witness", "directory for the witness's grants")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := parse(fs, args); err != nil {
		return err
	}
	log, err := newLogger(stderr, *level)
	if err != nil {
		return err
	}
	srv, err := witness.Open(witness.Config{DataDir: *dataDir, Logger: log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w (is another witness running? choose another address)", *listen, err)
	}
	log.Info("witness listening", "addr", ln.Addr().String(), "data_dir", *dataDir)
	fmt.Fprintf(stdout, "baton witness: http://%s, grants in %s\n", ln.Addr(), *dataDir)
	return srv.Serve(ctx, ln)
}

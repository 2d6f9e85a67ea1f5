// Package migration owns an agent's side of live migrations: the state of
// each migration this node takes part in (as source or target), persisted in
// <DataDir>/migrations/<id>/migration.json, and the handlers of the wire
// migration operations (prepare, dump, send-images, receive, restore,
// commit, abort). It carries out what the server's migration driver asks
// with CRIU (migrate/criu) and the runner (nodeagent/runner); the decisions
// are the server's (package migrate).
//
// Every operation is idempotent by migration id: operations of one
// migration run one at a time, a retry returns the stored outcome of the
// first (a second restore returns the same PID, it never starts a second
// copy), and an abort first cancels and waits out the operation in flight.
// See README.md for the sequence and what each reply carries.
package migration

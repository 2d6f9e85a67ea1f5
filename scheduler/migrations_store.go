package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/batonhq/baton/migrate"
	"github.com/batonhq/baton/wire"
)

// Migrations survive the server: every step of a migration is saved in
// Config.MigrationStore before its next operation goes to an agent. A
// restarted server, or a new leader, loads them (GET /v1/migrations lists
// past ones again) and drives each unfinished one to an end with
// migrate.Resume: on from a commit, a rollback from any earlier phase. The
// agents' operations are idempotent and their state is on disk, so an
// operation the previous driver left in flight is cancelled and undone by
// the abort.

// storeTimeout bounds one write of a migration record.
const storeTimeout = 5 * time.Second

// migrationDoc is a migration as the MigrationStore keeps it.
type migrationDoc struct {
	View MigrationView     `json:"view"`
	Cmd  wire.MigrationCmd `json:"cmd"`
}

// saveMigrationLocked writes run's record (best effort: a failed write is
// logged; the migration goes on).
func (s *Server) saveMigrationLocked(run *migrationRun) {
	if s.cfg.MigrationStore == nil {
		return
	}
	b, err := json.Marshal(migrationDoc{View: run.view, Cmd: run.cmd})
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		err = s.cfg.MigrationStore.PutMigration(ctx, run.view.ID, b)
		cancel()
	}
	if err != nil {
		s.log.Error("saving migration", "migration", run.view.ID, "state", run.view.State, "err", err)
	}
}

// loadMigrations reads the migration records. Runs this server drives
// already are kept as they are.
func (s *Server) loadMigrations(ctx context.Context) error {
	if s.cfg.MigrationStore == nil {
		return nil
	}
	docs, err := s.cfg.MigrationStore.ListMigrations(ctx)
	if err != nil {
		return fmt.Errorf("scheduler: loading migrations: %w", err)
	}
	var loaded []*migrationRun
	for _, b := range docs {
		var d migrationDoc
		if err := json.Unmarshal(b, &d); err != nil || d.View.ID == "" {
			s.log.Warn("ignoring an unreadable migration record", "err", err)
			continue
		}
		loaded = append(loaded, &migrationRun{view: d.View, cmd: d.Cmd})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range loaded {
		if cur, ok := s.migrations[r.view.ID]; ok && cur.mach != nil {
			continue // driven by this server
		}
		s.migrations[r.view.ID] = r
	}
	s.migrationOrder = s.migrationOrder[:0]
	for id := range s.migrations {
		s.migrationOrder = append(s.migrationOrder, id)
	}
	slices.SortFunc(s.migrationOrder, func(a, b string) int {
		return s.migrations[a].view.StartedAt.Compare(s.migrations[b].view.StartedAt)
	})
	s.log.Debug("loaded migrations", "migrations", len(loaded))
	return nil
}

// resumeMigrationsLocked starts driving every unfinished migration that no
// driver of this server has (see migrate.Resume). Only a leader calls it.
func (s *Server) resumeMigrationsLocked() {
	agents, ok := s.cfg.Agents.(MigrationAgents)
	if !ok {
		return
	}
	now := s.cfg.Clock.Now()
	for _, id := range s.migrationOrder {
		run := s.migrations[id]
		v := run.view
		if run.mach != nil || migrate.Phase(v.State).Final() {
			continue
		}
		cfg := migrate.Config{ID: v.ID, Workload: v.Workload, Source: v.Source, Target: v.Target, Mode: migrate.Mode(v.Mode)}
		mach, acts, err := migrate.Resume(cfg, migrate.Phase(v.State), v.StartedAt, now)
		if err != nil {
			s.log.Error("cannot resume migration", "migration", v.ID, "err", err)
			continue
		}
		before := v
		run.before, run.mach = &before, mach
		s.updateViewLocked(run)
		s.saveMigrationLocked(run)
		s.log.Warn("resuming a migration a previous driver left unfinished", "migration", v.ID, "workload", v.Workload,
			"phase", before.State, "actions", fmt.Sprint(acts))
		go s.driveMigration(agents, run, acts)
	}
}

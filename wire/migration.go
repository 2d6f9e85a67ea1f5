package wire

import (
	"fmt"
	"path"
	"strings"
	"time"
)

// Migration operations. The server drives a live migration (see package
// migrate) by sending these to the source and target agents on their command
// subjects; each answers with a CommandReply whose Migration field reports
// what happened.
//
//	server ─ prepare ────▶ target   images dir, cgroups, CRIU page server → PageServer
//	server ─ dump ───────▶ source   freeze, dump pages to PageServer; source stays frozen
//	                                (post-copy: no pages; the source serves them → PageServer)
//	server ─ send-images ▶ source ─ receive (chunks) ─▶ target   non-page images (+ workdir, log across hosts)
//	server ─ restore ────▶ target   restore, adopt under the workload's id → PID
//	server ─ wait-pages ─▶ target   post-copy: wait until every page arrived → Bytes
//	server ─ commit ─────▶ source   kill the frozen copy, forget it; ─▶ target: clean images
//	server ─ abort ──────▶ target   kill any restored copy; ─▶ source: thaw it
const (
	OpMigratePrepare    = "migrate-prepare"
	OpMigrateDump       = "migrate-dump"
	OpMigrateSendImages = "migrate-send-images"
	OpMigrateReceive    = "migrate-receive"
	OpMigrateRestore    = "migrate-restore"
	OpMigrateWaitPages  = "migrate-wait-pages"
	OpMigrateCommit     = "migrate-commit"
	OpMigrateAbort      = "migrate-abort"
)

// Roles of an agent in a migration, for commit and abort.
const (
	RoleSource = "source"
	RoleTarget = "target"
)

// StateMigrating is a workload's state while it moves.
const StateMigrating = "migrating"

// MigrationCmd is the body of every migration operation but receive.
type MigrationCmd struct {
	ID       string       `json:"id"`       // the migration's id
	Workload WorkloadSpec `json:"workload"` // the workload that moves
	Source   string       `json:"source"`   // node names
	Target   string       `json:"target"`
	Mode     string       `json:"mode"` // resolved: stop-copy, pre-copy, post-copy
	// Role says which side a commit or abort is for.
	Role string `json:"role,omitempty"`
	// PageServer is the CRIU page server (host:port) of the migration: the
	// target's, for a stop-copy dump; the source's (from the dump's reply),
	// for a post-copy restore.
	PageServer string `json:"page_server,omitempty"`
	// SourceLog and SourceWorkdir are the paths the source process had open
	// (its log and cwd), for restore; filled by the source's dump reply.
	SourceLog     string `json:"source_log,omitempty"`
	SourceWorkdir string `json:"source_workdir,omitempty"`
	// KillTarget and ResumeSource qualify an abort (see migrate.Action).
	KillTarget   bool `json:"kill_target,omitempty"`
	ResumeSource bool `json:"resume_source,omitempty"`
}

// FileChunk is one piece of a file sent from the source agent to the target
// agent during send-images (op receive).
type FileChunk struct {
	Migration string `json:"migration"` // the migration's id
	// Kind says where the file goes: "image" (the target's images dir),
	// "workdir" (the workload's working dir, same path as on the source) or
	// "log" (the workload's log on the target).
	Kind   string `json:"kind"`
	Path   string `json:"path"` // relative to the Kind's directory; no ".." allowed
	Mode   uint32 `json:"mode"` // permission bits (with setuid, setgid and sticky for a Dir)
	Offset int64  `json:"offset"`
	Data   []byte `json:"data"`
	Last   bool   `json:"last"` // the file is complete
	// Dir marks a directory (Path "." is the Kind's directory itself): it is
	// created if missing and gets exactly Mode, because CRIU refuses to
	// restore a process whose working or open directory has another mode.
	Dir bool `json:"dir,omitempty"`
}

// MaxChunk is the most data one FileChunk carries (NATS's default maximum
// message is 1 MiB, and JSON encodes bytes in base64).
const MaxChunk = 512 << 10

// MigrationReply reports the outcome of a migration operation.
type MigrationReply struct {
	PageServer    string        `json:"page_server,omitempty"` // prepare (stop-copy), dump (post-copy): host:port
	PID           int           `json:"pid,omitempty"`         // restore: host PID of the restored process
	Bytes         int64         `json:"bytes,omitempty"`       // dump, send-images, wait-pages: bytes moved
	RSSBytes      int64         `json:"rss_bytes,omitempty"`   // dump: the workload's RSS at the freeze
	FrozenAt      time.Time     `json:"frozen_at,omitzero"`    // dump: when the source froze
	Took          time.Duration `json:"took,omitempty"`        // how long the operation took on the agent
	SourceLog     string        `json:"source_log,omitempty"`  // dump: see MigrationCmd
	SourceWorkdir string        `json:"source_workdir,omitempty"`
	// HostID is the answering agent's NodeFeatures.HostID (prepare,
	// receive): the source learns from the acknowledgements of its chunks
	// whether the target shares its machine, and so its files.
	HostID string `json:"host_id,omitempty"`
}

// NodeFeatures is what an agent can do for migrations, sent in heartbeats.
type NodeFeatures struct {
	CRIU          bool   `json:"criu"` // a working CRIU 4.x
	CRIUVersion   string `json:"criu_version,omitempty"`
	MemDirtyTrack bool   `json:"mem_dirty_track"` // pre-copy possible
	LazyPages     bool   `json:"lazy_pages"`      // post-copy possible (with UFFD)
	UFFD          bool   `json:"uffd"`
	// LazyPagesWhyNot says why LazyPages is false on a node whose kernel
	// has userfaultfd (for example fs.pipe-max-size too small).
	LazyPagesWhyNot string `json:"lazy_pages_why_not,omitempty"`
	// HostID identifies the machine (its machine id and boot id): two nodes
	// with the same HostID share a filesystem, so a workload's workdir and
	// files need no copying between them.
	HostID string `json:"host_id,omitempty"`
	// MigrateAddr is the address the agent's page servers listen on.
	MigrateAddr string `json:"migrate_addr,omitempty"`
}

func validateMigrationCmd(op string, m *MigrationCmd) error {
	if m == nil || m.ID == "" || m.Workload.ID == "" {
		return fmt.Errorf("command %s: %w: needs a migration with an id and a workload id", op, ErrMalformed)
	}
	if ValidNodeName(m.Source) != nil || ValidNodeName(m.Target) != nil {
		return fmt.Errorf("command %s: %w: migration %s needs valid source and target nodes", op, ErrMalformed, m.ID)
	}
	switch op {
	case OpMigrateDump:
		if m.PageServer == "" && m.Mode != "post-copy" {
			return fmt.Errorf("command %s: %w: migration %s needs the target's page server", op, ErrMalformed, m.ID)
		}
	case OpMigrateRestore:
		if m.PageServer == "" && m.Mode == "post-copy" {
			return fmt.Errorf("command %s: %w: post-copy migration %s needs the source's page server", op, ErrMalformed, m.ID)
		}
	case OpMigrateCommit, OpMigrateAbort:
		if m.Role != RoleSource && m.Role != RoleTarget {
			return fmt.Errorf("command %s: %w: migration %s: role %q, want source or target", op, ErrMalformed, m.ID, m.Role)
		}
	}
	return nil
}

func validateChunk(c *FileChunk) error {
	if c == nil || c.Migration == "" {
		return fmt.Errorf("command %s: %w: needs a chunk with a migration id", OpMigrateReceive, ErrMalformed)
	}
	switch c.Kind {
	case "image", "workdir", "log":
	default:
		return fmt.Errorf("command %s: %w: chunk kind %q, want image, workdir or log", OpMigrateReceive, ErrMalformed, c.Kind)
	}
	clean := path.Clean(c.Path)
	if c.Path == "" || path.IsAbs(c.Path) || clean == ".." || strings.HasPrefix(clean, "../") || clean != c.Path {
		return fmt.Errorf("command %s: %w: chunk path %q must be relative and clean", OpMigrateReceive, ErrMalformed, c.Path)
	}
	if c.Offset < 0 || len(c.Data) > MaxChunk {
		return fmt.Errorf("command %s: %w: chunk at offset %d with %d bytes", OpMigrateReceive, ErrMalformed, c.Offset, len(c.Data))
	}
	if c.Dir && (c.Kind != "workdir" || len(c.Data) > 0) {
		return fmt.Errorf("command %s: %w: a directory chunk belongs to the workdir and carries no data (kind %q, %d bytes)", OpMigrateReceive, ErrMalformed, c.Kind, len(c.Data))
	}
	return nil
}

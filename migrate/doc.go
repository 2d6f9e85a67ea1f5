// Package migrate owns live migration: moving a running workload to another
// node with CRIU so that it continues where it was, memory and all.
//
// The protocol is a pure state machine (Machine): prepare → (pre-dump
// rounds) → freeze and dump → transfer → restore → commit, or abort and roll
// back. It does no I/O, reads no clock and starts no goroutine: the caller
// feeds it Events (with their timestamps) and carries out the Actions it
// returns, the way etcd's raft leaves I/O to the application. Every
// transition is recorded with its time; the Report gives phase durations,
// the frozen time (from the freeze to the workload running again) and the
// bytes moved.
//
// Safety: the source is never destroyed before the target confirms a good
// restore (ActCommit follows EvRestored only), and any failure or timeout
// before that ends in ActAbort, which kills whatever the target may have
// started before it resumes the source: exactly one copy runs. Post-copy is
// the exception, and the only one: once the target runs on lazy pages there
// is no rollback, and a failure then is reported as PhaseLost (no copy
// runs). Policy.AllowPostCopy says whether auto may take that risk.
//
// ChooseMode and Resolve pick the mode from both nodes' Features, the
// workload's RSS, the link speed and the Policy, and say why.
//
//	           EvTargetPrepared        EvDumped        EvTransferred      EvRestored
//	prepare ───────────────────▶ dump ─────────▶ transfer ─────────▶ restore ───────▶ commit ──▶ done
//	   │  └─▶ pre-dump (rounds) ──▲ │                │                  │    │ (post-copy)   ▲
//	   │              │           │ │                │                  │    └─▶ lazy-pages ─┘
//	   └──────────────┴───────────┴─┴───── EvFailed / timeout ──────────┘           │
//	                                  ▼                                             ▼
//	                      abort (kill target, resume source) ──▶ failed            lost
//
// The CRIU adapter that carries out dumps, restores and page servers is in
// migrate/criu; the agents move the Actions between nodes.
package migrate

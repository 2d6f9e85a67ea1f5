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
// started before it resumes the source: exactly one copy runs.
//
// Post-copy restores the target before its memory has arrived (EvRestored
// enters PhaseLazyPages and asks for ActWaitPages): the target runs while
// the source, still frozen and whole, serves it the missing pages. The
// point of no return is EvPagesDone (every page reached the target): only
// then does ActCommit kill the source. A failure or timeout in
// PhaseLazyPages still rolls back (target killed first, then the source
// resumed from its state at the freeze); what the target did meanwhile is
// lost from memory, though anything it wrote outside (files) stays.
// Policy.AllowPostCopy says whether auto may choose post-copy.
//
// ChooseMode and Resolve pick the mode from both nodes' Features, the
// workload's RSS, the link speed and the Policy, and say why.
//
//	           EvTargetPrepared        EvDumped        EvTransferred      EvRestored
//	prepare ───────────────────▶ dump ─────────▶ transfer ─────────▶ restore ───────▶ commit ──▶ done
//	   │  └─▶ pre-dump (rounds) ──▲ │                │                  │    │ (post-copy)   ▲ EvPagesDone:
//	   │              │           │ │                │                  │    └─▶ lazy-pages ─┘ point of no return
//	   └──────────────┴───────────┴─┴───── EvFailed / timeout ──────────┴───────────┘
//	                                  ▼
//	                      abort (kill target, resume source) ──▶ failed
//
// The CRIU adapter that carries out dumps, restores and page servers is in
// migrate/criu; the agents move the Actions between nodes.
package migrate

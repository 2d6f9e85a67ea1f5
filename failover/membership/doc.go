// Package membership tracks which nodes are alive from their heartbeats.
//
// It is pure: callers feed it heartbeats, leave notices, probe results and
// ticks, each with the current time, and get back the state transitions that
// happened and the probes to send. No clocks, goroutines or I/O live here, so
// every timing rule is tested by passing times in.
//
//	          heartbeat ×JoinHeartbeats
//	joining ───────────────────────────▶ running ◀─────┐
//	   ▲                                   │ silent     │ heartbeat
//	   │ heartbeat                         ▼ SuspectAfter
//	   │                                suspect ───────┘
//	   │                                   │ silent DownAfter            (RequireProbe off)
//	   │                                   │ probe failed or unanswered  (RequireProbe on)
//	   └──────────────────────────────── down ◀── exiting (leave, then silent DownAfter)
//
// With Config.RequireProbe (FailoverConfig) a node is declared down only on
// evidence: entering suspect makes Step return a Probe; the caller checks the
// node by another path and reports ProbeResult. A probe that answers keeps the
// node suspect — no new work, but nothing failed over — and it is probed again
// every ProbeEvery while it stays silent; a failed probe, or none answered
// within ProbeTimeout, makes it down. DefaultConfig keeps the silence-only rule
// the scheduler uses today.
package membership

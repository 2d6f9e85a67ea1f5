// Package membership tracks which nodes are alive from their heartbeats.
//
// It is pure: callers feed it heartbeats, leave notices and ticks, each with
// the current time, and get back the state transitions that happened. No
// clocks, goroutines or I/O live here, so every timing rule is tested by
// passing times in.
//
//	          heartbeat ×JoinHeartbeats
//	joining ───────────────────────────▶ running ◀─────┐
//	   ▲                                   │ silent     │ heartbeat
//	   │ heartbeat                         ▼ SuspectAfter
//	   │                                suspect ───────┘
//	   │                                   │ silent DownAfter
//	   └──────────────────────────────── down ◀── exiting (leave, then silent DownAfter)
package membership

package migrate

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// world is an independent model of the two nodes: it carries out the
// machine's actions the way the adapters would and knows what really runs,
// including a restore that started a copy but never reported it.
type world struct {
	source  Copy // running, frozen, gone
	target  Copy // none, running, gone
	pending []Action
	log     []string
}

func (w *world) apply(acts []Action) {
	for _, a := range acts {
		w.log = append(w.log, "do "+a.String())
		switch a.Kind {
		case ActDump:
			w.source = CopyFrozen
		case ActCommit:
			w.source = CopyGone
		case ActAbort:
			// The adapter cancels every step in flight and waits for it
			// before it rolls back: a restore still running cannot start
			// a copy after the kill.
			w.pending = nil
			if a.KillTarget && w.target == CopyRunning {
				w.target = CopyGone
			}
			if a.ResumeSource && w.source == CopyFrozen {
				w.source = CopyRunning
			}
		}
		w.pending = append(w.pending, a)
	}
}

func running(c Copy) int {
	if c == CopyRunning {
		return 1
	}
	return 0
}

// TestPropertyOneCopy drives machines with random event sequences —
// successes, failures, timeouts, lost replies, restores that start a copy
// without saying so, stale and duplicate events — and checks the safety
// invariant after every step: never two running copies, the source never
// destroyed before the target confirmed, and at the end exactly one copy
// running. Post-copy is held to the same rule: a failure while pages still
// stream rolls back to the frozen source.
func TestPropertyOneCopy(t *testing.T) {
	kinds := []EventKind{EvTargetPrepared, EvPreDumped, EvDumped, EvTransferred, EvRestored, EvPagesDone, EvCommitted, EvAborted, EvFailed, EvTick}
	phases := []Phase{PhasePrepare, PhasePreDump, PhaseDump, PhaseTransfer, PhaseRestore, PhaseLazyPages, PhaseCommit, PhaseAbort}
	modes := []Mode{ModeStopCopy, ModePreCopy, ModePostCopy}
	outcomes := map[Phase]int{}
	for seed := uint64(0); seed < 3000; seed++ {
		rng := rand.New(rand.NewPCG(seed, 42))
		mode := modes[rng.IntN(len(modes))]
		now := epoch
		m, acts, err := New(Config{ID: "m", Source: "a", Target: "b", Mode: mode, Timeout: time.Second, MaxPreDumpRounds: 1 + rng.IntN(4)}, now)
		if err != nil {
			t.Fatal(err)
		}
		w := &world{source: CopyRunning, target: CopyNone}
		w.apply(acts)
		confirmed := false
		for step := 0; step < 400 && !m.Phase().Final(); step++ {
			now = now.Add(time.Duration(rng.IntN(400)) * time.Millisecond)
			var ev Event
			r := rng.IntN(100)
			switch {
			case r < 55 && len(w.pending) > 0:
				// The world answers its oldest pending action.
				a := w.pending[0]
				w.pending = w.pending[1:]
				ev = answer(rng, w, a)
			case r < 70:
				ev = Event{Kind: EvFailed, Reason: "chaos", Phase: phases[rng.IntN(len(phases))]}
				if rng.IntN(2) == 0 {
					ev.Phase = ""
				}
			case r < 85:
				ev = Event{Kind: EvTick}
			default:
				ev = Event{Kind: kinds[rng.IntN(len(kinds))], PID: 1, Pages: int64(rng.IntN(100))}
			}
			if rng.IntN(40) == 0 {
				// The driver dies and a new one resumes from the phase it
				// persisted; the agents' ops in flight may still answer.
				w.log = append(w.log, fmt.Sprintf("%s driver restart in phase %s", now.Sub(epoch), m.Phase()))
				var acts []Action
				m, acts, err = Resume(Config{ID: "m", Source: "a", Target: "b", Mode: mode, Timeout: time.Second}, m.Phase(), epoch, now)
				if err != nil {
					t.Fatal(err)
				}
				w.apply(acts)
				continue
			}
			if ev.Kind == "" {
				continue
			}
			ev.At = now
			if ev.Kind == EvRestored && m.Phase() == PhaseRestore && w.target != CopyRunning {
				// A stray "restored" for a copy that does not run: the
				// world would not send it. Skip it (the machine trusts
				// the target's word; lying targets are out of scope).
				continue
			}
			w.log = append(w.log, fmt.Sprintf("%s %s phase=%s", ev.At.Sub(epoch), ev.Kind, ev.Phase))
			before := m.Phase()
			acts := m.Step(ev)
			// The target confirms: a good restore, or for post-copy every
			// page arrived (a restored post-copy target is not enough).
			if before == PhaseRestore && ev.Kind == EvRestored && m.Phase() == PhaseCommit ||
				before == PhaseLazyPages && ev.Kind == EvPagesDone && m.Phase() == PhaseCommit {
				confirmed = true
			}
			w.apply(acts)
			fail := func(msg string) {
				t.Fatalf("seed %d (mode %s): %s\nsource=%s target=%s phase=%s\n%s", seed, mode, msg, w.source, w.target, m.Phase(), strings.Join(w.log, "\n"))
			}
			if running(w.source)+running(w.target) > 1 {
				fail("two copies run")
			}
			if w.source == CopyGone && !confirmed {
				fail("the source was destroyed before the target confirmed a good restore (post-copy: all pages)")
			}
			if w.source != CopyRunning && w.source != CopyFrozen && w.target != CopyRunning {
				fail("no copy left")
			}
		}
		p := m.Phase()
		outcomes[p]++
		if !p.Final() {
			// Ran out of steps mid-way (possible with much chaos): the
			// invariants held all along; nothing more to check.
			continue
		}
		got := running(w.source) + running(w.target)
		switch {
		case got != 1:
			t.Fatalf("seed %d (mode %s): final phase %s with %d copies running (source %s, target %s)\n%s", seed, mode, p, got, w.source, w.target, strings.Join(w.log, "\n"))
		case p == PhaseDone && w.target != CopyRunning, p == PhaseFailed && w.source != CopyRunning:
			t.Fatalf("seed %d: phase %s but source %s target %s", seed, p, w.source, w.target)
		}
	}
	for _, p := range []Phase{PhaseDone, PhaseFailed} {
		if outcomes[p] == 0 {
			t.Errorf("no random run ended in %s: the generator does not cover it (%v)", p, outcomes)
		}
	}
	t.Logf("outcomes: %v", outcomes)
}

// answer is the world's reply to action a: success, failure, or nothing
// (the reply is lost; only a timeout moves on). A restore may start the copy
// and still fail or stay silent.
func answer(rng *rand.Rand, w *world, a Action) Event {
	r := rng.IntN(10)
	if r == 0 {
		return Event{} // reply lost
	}
	fail := r == 1
	switch a.Kind {
	case ActPrepareTarget:
		if fail {
			return Event{Kind: EvFailed, Phase: PhasePrepare, Reason: "no room"}
		}
		return Event{Kind: EvTargetPrepared}
	case ActPreDump:
		if fail {
			return Event{Kind: EvFailed, Phase: PhasePreDump, Reason: "pre-dump"}
		}
		return Event{Kind: EvPreDumped, Round: a.Round, Pages: int64(1000 / a.Round * rng.IntN(3))}
	case ActDump:
		if fail {
			return Event{Kind: EvFailed, Phase: PhaseDump, Reason: "dump"}
		}
		return Event{Kind: EvDumped, Bytes: 4096}
	case ActSendImages:
		if fail {
			return Event{Kind: EvFailed, Phase: PhaseTransfer, Reason: "link cut"}
		}
		return Event{Kind: EvTransferred, Bytes: 100}
	case ActRestore:
		if rng.IntN(2) == 0 {
			w.target = CopyRunning // it started, whatever it reports
		}
		if fail || w.target != CopyRunning {
			return Event{Kind: EvFailed, Phase: PhaseRestore, Reason: "restore"}
		}
		return Event{Kind: EvRestored, PID: 9}
	case ActWaitPages:
		if fail {
			// The lazy-pages daemon died or stalled: the target's copy
			// may still run (on zero pages) until the abort kills it.
			return Event{Kind: EvFailed, Phase: PhaseLazyPages, Reason: "lazy pages: connection reset"}
		}
		return Event{Kind: EvPagesDone, Bytes: 4096}
	case ActCommit:
		return Event{Kind: EvCommitted}
	case ActAbort:
		return Event{Kind: EvAborted}
	}
	return Event{}
}

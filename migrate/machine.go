package migrate

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors; check them with errors.Is.
var (
	// ErrInvalidConfig: a Config cannot start a migration.
	ErrInvalidConfig = errors.New("migrate: invalid migration config")
	// ErrModeUnsupported: the requested mode needs a feature that the source
	// or target node lacks, and the policy does not allow a fallback.
	ErrModeUnsupported = errors.New("migrate: mode not supported by the nodes")
)

// Mode is how a migration moves memory.
type Mode string

// The modes. ModeAuto is only a request: ChooseMode resolves it.
const (
	ModeAuto     Mode = "auto"
	ModeStopCopy Mode = "stop-copy" // freeze, dump all pages to the target's page server, restore
	ModePreCopy  Mode = "pre-copy"  // pre-dump rounds while running, then a final dump of dirty pages
	ModePostCopy Mode = "post-copy" // freeze, dump all but memory, restore at once, pages on demand
)

// Phase is where a migration is. PhaseDone and PhaseFailed are final.
type Phase string

// The phases, in protocol order.
const (
	PhasePrepare   Phase = "prepare"    // target reserves resources, creates cgroup, starts page server
	PhasePreDump   Phase = "pre-dump"   // pre-copy: iterative pre-dumps, source running
	PhaseDump      Phase = "dump"       // source frozen, images dumped, pages streamed to the target
	PhaseTransfer  Phase = "transfer"   // non-page images (and log/workdir) sent to the target
	PhaseRestore   Phase = "restore"    // target restores; the source stays frozen
	PhaseLazyPages Phase = "lazy-pages" // post-copy: the target runs, the still frozen source serves its pages
	PhaseCommit    Phase = "commit"     // target confirmed (post-copy: every page arrived): kill the source, clean images
	PhaseAbort     Phase = "abort"      // roll back: kill any target copy, resume the source
	PhaseDone      Phase = "done"       // final: the workload runs on the target only
	PhaseFailed    Phase = "failed"     // final: rolled back, the workload runs on the source only
)

// Final reports whether p ends a migration.
func (p Phase) Final() bool { return p == PhaseDone || p == PhaseFailed }

// EventKind names what happened.
type EventKind string

// The events an adapter feeds to Step.
const (
	EvTargetPrepared EventKind = "target-prepared" // the target is ready (page server listening)
	EvPreDumped      EventKind = "pre-dumped"      // a pre-dump round ended: Pages, Bytes
	EvDumped         EventKind = "dumped"          // the final dump ended: Bytes of pages streamed
	EvTransferred    EventKind = "transferred"     // the other images arrived: Bytes
	EvRestored       EventKind = "restored"        // the target runs the workload: PID
	EvPagesDone      EventKind = "pages-done"      // post-copy: every page reached the target: Bytes
	EvCommitted      EventKind = "committed"       // source killed and images cleaned
	EvAborted        EventKind = "aborted"         // rollback done: target copy gone, source running
	EvFailed         EventKind = "failed"          // the step of Phase failed: Reason
	EvTick           EventKind = "tick"            // time passed (timeouts are checked)
)

// Event is one input to a Machine. At is when it happened (the adapter's
// clock); the machine never reads a clock.
type Event struct {
	Kind   EventKind
	At     time.Time
	Pages  int64  // EvPreDumped: pages dumped in the round
	Bytes  int64  // EvPreDumped, EvDumped, EvTransferred, EvPagesDone: bytes moved
	PID    int    // EvRestored: the restored process's host PID on the target
	Phase  Phase  // EvFailed: the phase whose step failed ("" = the current one)
	Round  int    // EvPreDumped: the round it reports (0 = the current one)
	Reason string // EvFailed: what went wrong
}

// ActionKind names what the adapter must do.
type ActionKind string

// The actions Step returns.
const (
	ActPrepareTarget ActionKind = "prepare-target" // target: reserve, create cgroup, start page server
	ActPreDump       ActionKind = "pre-dump"       // source: pre-dump round Round (parent Round-1), process keeps running
	ActDump          ActionKind = "dump"           // source: freeze and dump, pages to the target's page server (parent: round ParentRound)
	ActSendImages    ActionKind = "send-images"    // move the non-page images, the log and workdir to the target
	ActRestore       ActionKind = "restore"        // target: restore (Lazy: with lazy pages)
	ActWaitPages     ActionKind = "wait-pages"     // post-copy, target: wait until every page arrived (and the copy still runs)
	ActCommit        ActionKind = "commit"         // source: kill the frozen copy, clean images on both nodes
	ActAbort         ActionKind = "abort"          // roll back: KillTarget first, then ResumeSource; clean images
)

// Action is one thing the adapter must carry out; it reports the outcome
// with an Event.
type Action struct {
	Kind        ActionKind
	Round       int  // ActPreDump: the round, from 1
	ParentRound int  // ActDump: the last pre-dump round (0: none)
	Lazy        bool // ActDump, ActRestore: post-copy
	// ActAbort: kill whatever the target may have restored (in this order:
	// the target copy is gone before the source runs again). The adapter
	// first cancels every step still in flight (a restore, a dump) and
	// waits for it to end, so nothing starts a copy after the kill.
	KillTarget bool
	// ActAbort: make sure the source runs (thaw it if it is frozen; it is a
	// no-op if it never stopped).
	ResumeSource bool
	Reason       string // ActAbort: why
	Attempt      int    // ActCommit, ActAbort: 1 for the first try, then retries
}

func (a Action) String() string {
	s := string(a.Kind)
	switch a.Kind {
	case ActPreDump:
		s += fmt.Sprintf(" round=%d", a.Round)
	case ActDump:
		if a.ParentRound > 0 {
			s += fmt.Sprintf(" parent-round=%d", a.ParentRound)
		}
		if a.Lazy {
			s += " lazy"
		}
	case ActRestore:
		if a.Lazy {
			s += " lazy"
		}
	case ActAbort:
		s += fmt.Sprintf(" kill-target=%t resume-source=%t", a.KillTarget, a.ResumeSource)
	}
	if a.Attempt > 1 {
		s += fmt.Sprintf(" attempt=%d", a.Attempt)
	}
	if a.Reason != "" {
		s += fmt.Sprintf(" reason=%q", a.Reason)
	}
	return s
}

// Defaults for Config.
const (
	DefaultMaxPreDumpRounds = 5
	DefaultPhaseTimeout     = 60 * time.Second
)

// Config describes one migration. Mode must be resolved (not ModeAuto): see
// Resolve.
type Config struct {
	ID       string // migration ID
	Workload string // workload ID
	Source   string // node names
	Target   string
	Mode     Mode
	// MaxPreDumpRounds bounds pre-copy (default DefaultMaxPreDumpRounds).
	MaxPreDumpRounds int
	// ConvergedPages: pre-copy stops early when a round dumps no more than
	// this many pages (default 0: only when the dirty set stops shrinking or
	// the rounds run out).
	ConvergedPages int64
	// Timeout bounds each phase (default DefaultPhaseTimeout); PhaseTimeouts
	// overrides it per phase.
	Timeout       time.Duration
	PhaseTimeouts map[Phase]time.Duration
}

// Transition is one recorded step of a migration.
type Transition struct {
	At       time.Time
	From, To Phase
	Event    EventKind // "" for the start
	Note     string
}

// PhaseTiming is how long a phase lasted (a phase entered twice, like
// commit retries, is one entry per entry).
type PhaseTiming struct {
	Phase    Phase
	Start    time.Time
	Duration time.Duration
}

// Copy is what the machine knows of one copy of the workload.
type Copy string

// The states of a copy.
const (
	CopyNone    Copy = "none"    // target: nothing restored (yet)
	CopyMaybe   Copy = "maybe"   // target: a restore was asked for and not confirmed
	CopyRunning Copy = "running" // runs
	CopyFrozen  Copy = "frozen"  // source: stopped by the dump, resumable
	CopyGone    Copy = "gone"    // killed
)

// Report is the record of a migration, for the API and logs.
type Report struct {
	ID, Workload, Source, Target string
	Mode                         Mode
	Phase                        Phase
	Started, Ended               time.Time // Ended is zero until final
	Reason                       string    // first failure (PhaseFailed)
	Phases                       []PhaseTiming
	// Frozen is the downtime: from the freeze to the workload running again
	// (on the target after a restore, on the source after a rollback).
	// Zero until it runs again.
	Frozen                 time.Duration
	BytesMoved             int64
	PreDumpPages           []int64 // pages per pre-dump round
	TargetPID              int
	Transitions            []Transition
	SourceCopy, TargetCopy Copy // what the machine believes of each copy
}

// Machine is the migration protocol as a state machine. It does no I/O: Step
// takes an event and returns the actions to carry out. It is not safe for
// concurrent use.
type Machine struct {
	cfg        Config
	phase      Phase
	phaseStart time.Time
	frozenAt   time.Time // zero while the source runs
	restoreAsk bool      // a restore was asked for: the target may run a copy
	round      int
	lastPages  int64
	attempt    int // of the current commit or abort
	rep        Report
}

// New starts a migration at now and returns the first actions.
func New(cfg Config, now time.Time) (*Machine, []Action, error) {
	switch cfg.Mode {
	case ModeStopCopy, ModePreCopy, ModePostCopy:
	default:
		return nil, nil, fmt.Errorf("%w: migration %q: mode %q: resolve auto (or an unknown mode) with Resolve first", ErrInvalidConfig, cfg.ID, cfg.Mode)
	}
	if cfg.Source == "" || cfg.Target == "" || cfg.Source == cfg.Target {
		return nil, nil, fmt.Errorf("%w: migration %q: source %q and target %q must be two different nodes", ErrInvalidConfig, cfg.ID, cfg.Source, cfg.Target)
	}
	if cfg.MaxPreDumpRounds <= 0 {
		cfg.MaxPreDumpRounds = DefaultMaxPreDumpRounds
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultPhaseTimeout
	}
	m := &Machine{cfg: cfg, phase: PhasePrepare, phaseStart: now}
	m.rep = Report{
		ID: cfg.ID, Workload: cfg.Workload, Source: cfg.Source, Target: cfg.Target,
		Mode: cfg.Mode, Phase: PhasePrepare, Started: now,
		SourceCopy: CopyRunning, TargetCopy: CopyNone,
	}
	m.rep.Transitions = append(m.rep.Transitions, Transition{At: now, To: PhasePrepare, Note: "mode " + string(cfg.Mode)})
	return m, []Action{{Kind: ActPrepareTarget}}, nil
}

// Phase returns the current phase.
func (m *Machine) Phase() Phase { return m.phase }

// Report returns the record so far (a copy).
func (m *Machine) Report() Report {
	r := m.rep
	r.Phases = append([]PhaseTiming(nil), r.Phases...)
	r.PreDumpPages = append([]int64(nil), r.PreDumpPages...)
	r.Transitions = append([]Transition(nil), r.Transitions...)
	r.Phase = m.phase
	return r
}

// Copies returns what the machine believes of the source and target copies.
func (m *Machine) Copies() (source, target Copy) { return m.rep.SourceCopy, m.rep.TargetCopy }

func (m *Machine) timeout(p Phase) time.Duration {
	if d, ok := m.cfg.PhaseTimeouts[p]; ok && d > 0 {
		return d
	}
	return m.cfg.Timeout
}

// enter moves to phase to at time at.
func (m *Machine) enter(to Phase, at time.Time, ev EventKind, note string) {
	if at.Before(m.phaseStart) {
		at = m.phaseStart // a late timestamp never makes a negative duration
	}
	m.rep.Phases = append(m.rep.Phases, PhaseTiming{Phase: m.phase, Start: m.phaseStart, Duration: at.Sub(m.phaseStart)})
	m.rep.Transitions = append(m.rep.Transitions, Transition{At: at, From: m.phase, To: to, Event: ev, Note: note})
	m.phase, m.phaseStart = to, at
	if to.Final() {
		m.rep.Ended = at
	}
}

// note records an event that did not change the phase.
func (m *Machine) note(at time.Time, ev EventKind, note string) {
	m.rep.Transitions = append(m.rep.Transitions, Transition{At: at, From: m.phase, To: m.phase, Event: ev, Note: note})
}

func (m *Machine) thawed(at time.Time) {
	if !m.frozenAt.IsZero() && m.rep.Frozen == 0 {
		m.rep.Frozen = max(at.Sub(m.frozenAt), 0)
	}
}

// Step feeds one event to the machine and returns the actions to carry out,
// in order. Events that do not fit the current phase (late, duplicated, for
// another phase) change nothing and return no action; they are recorded.
func (m *Machine) Step(ev Event) []Action {
	if m.phase.Final() {
		return nil
	}
	if ev.At.Before(m.phaseStart) {
		ev.At = m.phaseStart
	}
	switch ev.Kind {
	case EvTick:
		if d := ev.At.Sub(m.phaseStart); d >= m.timeout(m.phase) {
			return m.fail(ev.At, EvTick, fmt.Sprintf("timeout: phase %s took longer than %s", m.phase, m.timeout(m.phase)))
		}
		return nil
	case EvFailed:
		if ev.Phase != "" && ev.Phase != m.phase {
			m.note(ev.At, ev.Kind, fmt.Sprintf("ignored: failure of phase %s reported in phase %s: %s", ev.Phase, m.phase, ev.Reason))
			return nil
		}
		reason := ev.Reason
		if reason == "" {
			reason = "unspecified failure"
		}
		return m.fail(ev.At, EvFailed, reason)
	}

	switch m.phase {
	case PhasePrepare:
		if ev.Kind == EvTargetPrepared {
			if m.cfg.Mode == ModePreCopy {
				m.enter(PhasePreDump, ev.At, ev.Kind, "")
				m.round = 1
				return []Action{{Kind: ActPreDump, Round: 1}}
			}
			return m.dump(ev.At, ev.Kind, "")
		}
	case PhasePreDump:
		if ev.Kind == EvPreDumped && (ev.Round == 0 || ev.Round == m.round) {
			m.rep.PreDumpPages = append(m.rep.PreDumpPages, ev.Pages)
			m.rep.BytesMoved += ev.Bytes
			prev := m.lastPages
			m.lastPages = ev.Pages
			switch {
			case m.round > 1 && ev.Pages >= prev:
				return m.dump(ev.At, ev.Kind, fmt.Sprintf("round %d: %d pages, not fewer than %d: the dirty set stopped shrinking", m.round, ev.Pages, prev))
			case ev.Pages <= m.cfg.ConvergedPages:
				return m.dump(ev.At, ev.Kind, fmt.Sprintf("round %d: %d pages ≤ %d: converged", m.round, ev.Pages, m.cfg.ConvergedPages))
			case m.round >= m.cfg.MaxPreDumpRounds:
				return m.dump(ev.At, ev.Kind, fmt.Sprintf("round %d: %d pages: max rounds reached", m.round, ev.Pages))
			}
			m.note(ev.At, ev.Kind, fmt.Sprintf("round %d: %d pages", m.round, ev.Pages))
			m.round++
			return []Action{{Kind: ActPreDump, Round: m.round}}
		}
	case PhaseDump:
		if ev.Kind == EvDumped {
			m.rep.BytesMoved += ev.Bytes
			m.enter(PhaseTransfer, ev.At, ev.Kind, "")
			return []Action{{Kind: ActSendImages}}
		}
	case PhaseTransfer:
		if ev.Kind == EvTransferred {
			m.rep.BytesMoved += ev.Bytes
			m.enter(PhaseRestore, ev.At, ev.Kind, "")
			m.restoreAsk = true
			m.rep.TargetCopy = CopyMaybe
			return []Action{{Kind: ActRestore, Lazy: m.cfg.Mode == ModePostCopy}}
		}
	case PhaseRestore:
		if ev.Kind == EvRestored {
			m.rep.TargetPID = ev.PID
			m.rep.TargetCopy = CopyRunning
			m.thawed(ev.At)
			if m.cfg.Mode == ModePostCopy {
				// The target runs on pages it has not got yet; the
				// source, still frozen, holds them. Not the point of no
				// return: until every page arrived the source stays
				// frozen and whole, so a failure still rolls back to it
				// (and throws away what the target did meanwhile).
				m.enter(PhaseLazyPages, ev.At, ev.Kind, fmt.Sprintf("target pid %d runs with lazy pages; the source stays frozen until every page arrived", ev.PID))
				return []Action{{Kind: ActWaitPages}}
			}
			return m.commit(ev.At, ev.Kind, fmt.Sprintf("target pid %d", ev.PID))
		}
	case PhaseLazyPages:
		if ev.Kind == EvPagesDone {
			// The point of no return of post-copy: the commit kills the
			// source, after which the target's copy is the only one.
			m.rep.BytesMoved += ev.Bytes
			return m.commit(ev.At, ev.Kind, "every page reached the target: point of no return")
		}
	case PhaseCommit:
		if ev.Kind == EvCommitted {
			m.rep.SourceCopy = CopyGone
			m.enter(PhaseDone, ev.At, ev.Kind, "")
			return nil
		}
	case PhaseAbort:
		if ev.Kind == EvAborted {
			m.thawed(ev.At)
			m.rep.SourceCopy = CopyRunning
			if m.restoreAsk {
				m.rep.TargetCopy = CopyGone
			}
			m.enter(PhaseFailed, ev.At, ev.Kind, "source runs")
			return nil
		}
	}
	m.note(ev.At, ev.Kind, "ignored in phase "+string(m.phase))
	return nil
}

func (m *Machine) dump(at time.Time, ev EventKind, note string) []Action {
	m.enter(PhaseDump, at, ev, note)
	m.frozenAt = at
	m.rep.SourceCopy = CopyFrozen
	parent := 0
	if m.cfg.Mode == ModePreCopy {
		parent = m.round
	}
	return []Action{{Kind: ActDump, ParentRound: parent, Lazy: m.cfg.Mode == ModePostCopy}}
}

func (m *Machine) commit(at time.Time, ev EventKind, note string) []Action {
	m.enter(PhaseCommit, at, ev, note)
	m.attempt = 1
	return []Action{{Kind: ActCommit, Attempt: 1}}
}

// fail handles a failure or timeout of the current phase.
func (m *Machine) fail(at time.Time, ev EventKind, reason string) []Action {
	switch m.phase {
	case PhaseCommit:
		// The target runs and is confirmed: the only way is forward.
		m.attempt++
		m.note(at, ev, "commit failed, retrying: "+reason)
		m.phaseStart = at
		return []Action{{Kind: ActCommit, Attempt: m.attempt}}
	case PhaseAbort:
		m.attempt++
		m.note(at, ev, "rollback failed, retrying: "+reason)
		m.phaseStart = at
		return []Action{{Kind: ActAbort, KillTarget: m.restoreAsk, ResumeSource: true, Attempt: m.attempt, Reason: m.rep.Reason}}
	}
	m.rep.Reason = fmt.Sprintf("%s: %s", m.phase, reason)
	if m.phase == PhaseLazyPages {
		// The target ran on a partial memory: it goes, and the source
		// resumes from its state at the freeze. What the target did
		// meanwhile (its memory) is lost; what it wrote outside (files)
		// stays, and the source will redo that part of its work.
		m.rep.Reason += "; the target's copy ran on incomplete memory and was killed, the source resumed from its state at the freeze"
	}
	m.enter(PhaseAbort, at, ev, reason)
	m.attempt = 1
	return []Action{{Kind: ActAbort, KillTarget: m.restoreAsk, ResumeSource: true, Attempt: 1, Reason: m.rep.Reason}}
}

// Resume rebuilds the machine of a migration whose driver stopped in phase
// (a server restart or a new leader: the agents kept their state, the
// machine's memory was lost) and returns the actions that end it safely:
//
//   - commit: the target had confirmed (post-copy: every page had
//     arrived); the commit is carried on (ActCommit).
//   - any other unfinished phase: rolled back (ActAbort, the target's copy
//     killed first, then the source resumed). A dump or restore that was in
//     flight is cancelled and undone by the agents' abort.
//   - final: nothing to do.
//
// started is when the migration began; the report's phases start at now.
func Resume(cfg Config, phase Phase, started, now time.Time) (*Machine, []Action, error) {
	m, _, err := New(cfg, now)
	if err != nil {
		return nil, nil, err
	}
	m.rep.Started = started
	m.rep.Transitions[0].To = phase
	m.rep.Transitions[0].Note = "resumed after the driver stopped"
	m.phase = phase
	switch phase {
	case PhasePrepare, PhasePreDump:
		m.rep.SourceCopy = CopyRunning
	default:
		m.rep.SourceCopy = CopyFrozen
	}
	switch phase {
	case PhaseRestore, PhaseLazyPages, PhaseCommit, PhaseAbort:
		// A restore may have started a copy on the target.
		m.restoreAsk = true
		m.rep.TargetCopy = CopyMaybe
	}
	switch {
	case phase.Final():
		return m, nil, nil
	case phase == PhaseCommit:
		m.rep.TargetCopy = CopyRunning
		m.attempt = 1
		return m, []Action{{Kind: ActCommit, Attempt: 1}}, nil
	}
	if phase == PhaseAbort {
		m.phase = PhaseRestore // so that fail records it as a fresh rollback
	}
	acts := m.fail(now, EvTick, "the migration's driver stopped (server restart or new leader) in phase "+string(phase)+": rolled back")
	return m, acts, nil
}

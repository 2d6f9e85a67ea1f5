package migrate

import (
	"fmt"
	"strings"
	"time"
)

// Features are the CRIU capabilities of one node, as its agent detects them
// at start and reports them with its heartbeat.
type Features struct {
	MemDirtyTrack bool // soft-dirty tracking: pre-dump --track-mem works (pre-copy)
	// PreDumpRounds: the node's agent carries out pre-dump rounds. Pre-copy
	// needs it besides MemDirtyTrack; no agent does yet (none of Baton's
	// test kernels tracks dirty pages, so the rounds could not be tested).
	PreDumpRounds bool
	LazyPages     bool // CRIU lazy-pages support (post-copy)
	UFFD          bool // userfaultfd in the kernel (post-copy, on the target)
}

// Policy steers the choice of a mode.
type Policy struct {
	// MaxFrozen is the downtime that auto accepts for stop-copy, estimated
	// as RSS / link speed + FixedOverhead (default DefaultMaxFrozen).
	MaxFrozen time.Duration
	// FixedOverhead is CRIU's time that does not depend on RSS (default
	// DefaultFixedOverhead).
	FixedOverhead time.Duration
	// AllowPostCopy lets auto choose post-copy. Post-copy cannot roll back
	// once the target runs: a failure then loses the workload's state.
	AllowPostCopy bool
	// Fallback: an explicit pre-copy or post-copy request that the nodes
	// cannot serve falls back to stop-copy instead of being refused.
	Fallback bool
}

// Defaults for Policy.
const (
	DefaultMaxFrozen     = 2 * time.Second
	DefaultFixedOverhead = 100 * time.Millisecond
)

// ChooseMode picks the mode for auto from both nodes' features, the
// workload's resident memory and the link speed (bytes/s, 0 = unknown), and
// says why. Stop-copy is preferred whenever its estimated downtime fits the
// policy: it is the simplest and always rolls back cleanly. Otherwise
// pre-copy (it also rolls back), then post-copy if the policy allows it,
// else stop-copy anyway.
func ChooseMode(src, dst Features, rssBytes, linkBytesPerSec int64, p Policy) (Mode, string) {
	if p.MaxFrozen <= 0 {
		p.MaxFrozen = DefaultMaxFrozen
	}
	if p.FixedOverhead <= 0 {
		p.FixedOverhead = DefaultFixedOverhead
	}
	if linkBytesPerSec <= 0 {
		return ModeStopCopy, "link speed unknown: stop-copy, the mode that always rolls back"
	}
	est := p.FixedOverhead + time.Duration(float64(rssBytes)/float64(linkBytesPerSec)*float64(time.Second))
	est = est.Round(time.Millisecond)
	if est <= p.MaxFrozen {
		return ModeStopCopy, fmt.Sprintf("stop-copy: estimated downtime %s (RSS %s at %s/s) fits the %s budget", est, bytesStr(rssBytes), bytesStr(linkBytesPerSec), p.MaxFrozen)
	}
	over := fmt.Sprintf("estimated stop-copy downtime %s (RSS %s at %s/s) exceeds the %s budget", est, bytesStr(rssBytes), bytesStr(linkBytesPerSec), p.MaxFrozen)
	if ok, _ := preCopyOK(src); ok {
		return ModePreCopy, "pre-copy: " + over
	}
	_, whyNotPre := preCopyOK(src)
	if ok, why := postCopyOK(src, dst); ok && p.AllowPostCopy {
		return ModePostCopy, "post-copy: " + over + "; " + whyNotPre
	} else if ok {
		return ModeStopCopy, "stop-copy: " + over + "; " + whyNotPre + "; post-copy is possible but the policy does not allow it"
	} else {
		return ModeStopCopy, "stop-copy: " + over + "; " + whyNotPre + "; " + why
	}
}

func preCopyOK(src Features) (bool, string) {
	if !src.MemDirtyTrack {
		return false, "pre-copy needs mem_dirty_track (soft-dirty) on the source, which it lacks"
	}
	if !src.PreDumpRounds {
		return false, "Baton's agents do not carry out pre-copy's pre-dump rounds yet (the source does track dirty pages)"
	}
	return true, ""
}

func postCopyOK(src, dst Features) (bool, string) {
	var miss []string
	if !dst.UFFD {
		miss = append(miss, "userfaultfd on the target")
	}
	if !src.LazyPages {
		miss = append(miss, "lazy-pages on the source")
	}
	if !dst.LazyPages {
		miss = append(miss, "lazy-pages on the target")
	}
	if len(miss) > 0 {
		return false, "post-copy needs " + strings.Join(miss, ", ")
	}
	return true, ""
}

// Resolve turns a requested mode into the mode to run. Auto goes to
// ChooseMode. An explicit pre-copy or post-copy that the nodes cannot serve
// falls back to stop-copy if the policy says Fallback, else it is refused
// with an error wrapping ErrModeUnsupported. An explicit post-copy request
// needs no AllowPostCopy: the policy only binds auto.
func Resolve(req Mode, src, dst Features, rssBytes, linkBytesPerSec int64, p Policy) (Mode, string, error) {
	var ok bool
	var why string
	switch req {
	case ModeAuto, "":
		m, r := ChooseMode(src, dst, rssBytes, linkBytesPerSec, p)
		return m, "auto chose " + r, nil
	case ModeStopCopy:
		return ModeStopCopy, "requested", nil
	case ModePreCopy:
		ok, why = preCopyOK(src)
	case ModePostCopy:
		ok, why = postCopyOK(src, dst)
	default:
		return "", "", fmt.Errorf("%w: unknown mode %q: use auto, stop-copy, pre-copy or post-copy", ErrInvalidConfig, req)
	}
	if ok {
		return req, "requested", nil
	}
	if p.Fallback {
		return ModeStopCopy, fmt.Sprintf("%s requested but %s: falling back to stop-copy", req, why), nil
	}
	return "", "", fmt.Errorf("%w: %s requested but %s: ask for stop-copy or auto", ErrModeUnsupported, req, why)
}

func bytesStr(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}

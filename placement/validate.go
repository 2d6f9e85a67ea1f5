package placement

import (
	"errors"
	"strconv"
	"strings"
)

// ErrInvalidRequest is returned (wrapped, with every problem found) by
// ValidateRequest and Place for a request that cannot be placed as written,
// as opposed to one that no node can take (ErrNoFit).
var ErrInvalidRequest = errors.New("invalid placement request")

// ValidateRequest reports every problem with req at once: negative
// resources, an unknown strategy, empty names in the constraints. The error
// wraps ErrInvalidRequest. Place calls it first.
func ValidateRequest(req Request) error {
	var problems []string
	if c := req.Resources.CPUMillis; c < 0 {
		problems = append(problems, "cpu request is negative ("+strconv.FormatInt(c, 10)+"m); ask for 0 or more millicores")
	}
	if m := req.Resources.MemoryMB; m < 0 {
		problems = append(problems, "memory request is negative ("+strconv.FormatInt(m, 10)+" MiB); ask for 0 or more MiB")
	}
	switch req.Strategy {
	case "", BinPack, Spread:
	default:
		problems = append(problems, "unknown strategy "+strconv.Quote(string(req.Strategy))+
			`; use "binpack" or "spread" (empty means "binpack")`)
	}
	c := req.Constraints
	if hasEmpty(c.Nodes) {
		problems = append(problems, "the node list has an empty node name")
	}
	if hasEmpty(c.AvoidNodes) {
		problems = append(problems, "the avoid list has an empty node name")
	}
	if _, ok := c.Labels[""]; ok {
		problems = append(problems, "a label constraint has an empty key")
	}
	if hasEmpty(c.AntiAffinity) {
		problems = append(problems, "the anti-affinity list has an empty workload name")
	}
	if len(problems) == 0 {
		return nil
	}
	return &requestError{workload: req.Workload, problems: problems}
}

func hasEmpty(names []string) bool {
	for _, n := range names {
		if n == "" {
			return true
		}
	}
	return false
}

// requestError is ValidateRequest's error.
type requestError struct {
	workload string
	problems []string
}

func (e *requestError) Error() string {
	return workloadPrefix(e.workload) + ErrInvalidRequest.Error() + ": " + strings.Join(e.problems, "; ")
}

func (e *requestError) Unwrap() error { return ErrInvalidRequest }

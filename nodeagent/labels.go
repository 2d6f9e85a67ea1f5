package nodeagent

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// ErrBadLabels is returned for node labels that cannot be parsed or used.
var ErrBadLabels = errors.New("nodeagent: bad labels")

var (
	labelKeyRE   = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$`)
	labelValueRE = regexp.MustCompile(`^[A-Za-z0-9._:/-]{0,63}$`)
)

const labelHelp = "write labels as key=value,key2=value2; keys are 1-63 letters, digits, '.', '_', '-' or '/' starting and ending with a letter or digit; values up to 63 of those or ':'"

// ParseLabels parses node labels written as "k=v,k2=v2" (spaces around items
// are ignored; an empty string means no labels). It never returns a nil map
// without an error.
func ParseLabels(s string) (map[string]string, error) {
	labels := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return labels, nil
	}
	for i, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, fmt.Errorf("%w: item %d of %q is empty (a stray comma?): %s", ErrBadLabels, i+1, s, labelHelp)
		}
		k, v, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("%w: %q has no '=': %s", ErrBadLabels, item, labelHelp)
		}
		if _, dup := labels[k]; dup {
			return nil, fmt.Errorf("%w: key %q given twice", ErrBadLabels, k)
		}
		labels[k] = v
	}
	if err := ValidateLabels(labels); err != nil {
		return nil, err
	}
	return labels, nil
}

// ValidateLabels checks every key and value of labels.
func ValidateLabels(labels map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if !labelKeyRE.MatchString(k) {
			return fmt.Errorf("%w: key %q: %s", ErrBadLabels, k, labelHelp)
		}
		if v := labels[k]; !labelValueRE.MatchString(v) {
			return fmt.Errorf("%w: value %q of key %q: %s", ErrBadLabels, v, k, labelHelp)
		}
	}
	return nil
}

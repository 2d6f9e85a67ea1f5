package nodeagent_test

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/batonhq/baton/nodeagent"
)

func TestParseLabels(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string]string
		wantErr string
	}{
		{"", map[string]string{}, ""},
		{"  ", map[string]string{}, ""},
		{"zone=a", map[string]string{"zone": "a"}, ""},
		{"zone=eu-1, disk=ssd ,gpu=", map[string]string{"zone": "eu-1", "disk": "ssd", "gpu": ""}, ""},
		{"baton.io/rack=r1:2", map[string]string{"baton.io/rack": "r1:2"}, ""},
		{"zone", nil, "no '=': write labels as key=value,key2=value2"},
		{"zone=a,", nil, "empty"},
		{",zone=a", nil, "empty"},
		{"zone=a,zone=b", nil, "twice"},
		{"=a", nil, "key"},
		{"zo ne=a", nil, "key"},
		{"-zone=a", nil, "key"},
		{"zone=a b", nil, "value"},
		{"zone=a=b", nil, "value"},
		{"k=" + strings.Repeat("v", 64), nil, "value"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := nodeagent.ParseLabels(tc.in)
			if tc.wantErr != "" {
				if !errors.Is(err, nodeagent.ErrBadLabels) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseLabels(%q) error = %v, want ErrBadLabels mentioning %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil || !maps.Equal(got, tc.want) || got == nil {
				t.Errorf("ParseLabels(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func formatLabels(m map[string]string) string {
	var items []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		items = append(items, k+"="+m[k])
	}
	return strings.Join(items, ",")
}

func FuzzParseLabels(f *testing.F) {
	for _, s := range []string{"", "a=b", "zone=eu-1, disk=ssd", "a=b,a=c", "a", "=", ",", "a=b=c", "k/x.y=v:w"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := nodeagent.ParseLabels(s)
		if err != nil {
			if m != nil || !errors.Is(err, nodeagent.ErrBadLabels) {
				t.Fatalf("ParseLabels(%q) = %v, %v: an error must come with a nil map and wrap ErrBadLabels", s, m, err)
			}
			return
		}
		if m == nil {
			t.Fatalf("ParseLabels(%q) = nil map without error", s)
		}
		if err := nodeagent.ValidateLabels(m); err != nil {
			t.Fatalf("ParseLabels(%q) accepted labels that ValidateLabels rejects: %v", s, err)
		}
		again, err := nodeagent.ParseLabels(formatLabels(m))
		if err != nil || !maps.Equal(again, m) {
			t.Fatalf("round trip of %q: %v -> %q -> %v, %v", s, m, formatLabels(m), again, err)
		}
	})
}

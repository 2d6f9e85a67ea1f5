package process

import "testing"

func TestParseStat(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		state byte
		start uint64
		ok    bool
	}{
		{"Plain", "42 (sleep) S 1 42 42 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 12345 1000 100 0", 'S', 12345, true},
		{"ParensInName", "42 (a) b) (c) Z 1 42 42 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 777 1000 100 0", 'Z', 777, true},
		{"Short", "42 (x) S 1 2", 0, 0, false},
		{"NoParen", "42 x S", 0, 0, false},
		{"Empty", "", 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, start, ok := ParseStat([]byte(tt.in))
			if st != tt.state || start != tt.start || ok != tt.ok {
				t.Errorf("ParseStat(%q) = %q, %d, %v; want %q, %d, %v", tt.in, st, start, ok, tt.state, tt.start, tt.ok)
			}
		})
	}
}

func TestParsePidFile(t *testing.T) {
	for in, want := range map[string]int{"42": 42, " 42\n": 42, "": 0, "-1": 0, "0": 0, "42 43": 0, "x": 0, "99999999999": 0} {
		got, err := ParsePidFile([]byte(in))
		if got != want || (want == 0) != (err != nil) {
			t.Errorf("ParsePidFile(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

func FuzzParsePidFile(f *testing.F) {
	f.Add([]byte("42\n"))
	f.Add([]byte("-7"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pid, err := ParsePidFile(b)
		if err == nil && pid <= 0 {
			t.Fatalf("ParsePidFile(%q) = %d without an error", b, pid)
		}
	})
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("42 (sleep) S 1 42 42 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 12345 1000 100 0"))
	f.Add([]byte("1 ()) R"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _ = ParseStat(b)
	})
}

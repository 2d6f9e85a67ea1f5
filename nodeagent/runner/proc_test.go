package runner

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestSigCaught(t *testing.T) {
	tests := []struct {
		name    string
		status  string
		want    bool
		wantErr bool
	}{
		{"TERM caught", "Name:\tsh\nSigCgt:\t0000000000004002\n", true, false}, // bits for SIGINT(2) and SIGTERM(15)
		{"TERM not caught", "Name:\tsh\nSigCgt:\t0000000000000002\n", false, false},
		{"no mask", "Name:\tsh\n", false, true},
		{"bad mask", "SigCgt:\tzz\n", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := sigCaught([]byte(tc.status), unix.SIGTERM)
			if got != tc.want || (err != nil) != tc.wantErr {
				t.Errorf("sigCaught = %v, %v; want %v, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

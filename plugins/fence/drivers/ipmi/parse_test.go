package ipmi

import (
	"testing"

	"github.com/batonhq/baton/plugins/fence"
)

func TestParsePowerStatus(t *testing.T) {
	tests := []struct {
		name, out string
		want      fence.PowerState
	}{
		{"On", "Chassis Power is on\n", fence.PowerOn},
		{"Off", "Chassis Power is off\n", fence.PowerOff},
		{"Spaces", "  Chassis Power is OFF \r\n", fence.PowerOff},
		{"Empty", "", fence.PowerUnknown},
		{"ControlAnswer", "Chassis Power Control: Down/Off\n", fence.PowerUnknown},
		{"Garbage", "Chassis Power is maybe\n", fence.PowerUnknown},
		{"LastLineWins", "Chassis Power is on\nChassis Power is off\n", fence.PowerOff},
		{"ContradictionIsUnknown", "Chassis Power is off\nChassis Power is half\n", fence.PowerUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParsePowerStatus([]byte(tt.out)); got != tt.want {
				t.Errorf("ParsePowerStatus(%q) = %v, want %v", tt.out, got, tt.want)
			}
		})
	}
}

func FuzzParsePowerStatus(f *testing.F) {
	f.Add([]byte("Chassis Power is on\n"))
	f.Add([]byte("Chassis Power is off\n"))
	f.Add([]byte("Error: Unable to establish IPMI v2 / RMCP+ session\n"))
	f.Fuzz(func(t *testing.T, out []byte) {
		switch ParsePowerStatus(out) {
		case fence.PowerOn, fence.PowerOff, fence.PowerUnknown:
		default:
			t.Fatal("invalid state")
		}
	})
}

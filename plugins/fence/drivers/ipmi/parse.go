package ipmi

import (
	"strings"

	"github.com/batonhq/baton/plugins/fence"
)

// ParsePowerStatus reads ipmitool's "Chassis Power is on|off" answer to
// "chassis power status". Anything else is PowerUnknown.
func ParsePowerStatus(out []byte) fence.PowerState {
	st := fence.PowerUnknown
	for _, line := range strings.Split(string(out), "\n") {
		v, ok := strings.CutPrefix(strings.TrimSpace(line), "Chassis Power is ")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "on":
			st = fence.PowerOn
		case "off":
			st = fence.PowerOff
		default:
			return fence.PowerUnknown
		}
	}
	return st
}

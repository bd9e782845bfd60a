package personalize

import "github.com/loopcard/loopcard/personalize/desfire"

// DESFire returns the AID as package desfire takes it (the first byte is
// the least significant).
func (a AID) DESFire() desfire.AID {
	return desfire.AID(uint32(a[0]) | uint32(a[1])<<8 | uint32(a[2])<<16)
}

// DESFire returns the communication mode as package desfire takes it; an
// unknown mode is plain.
func (m CommMode) DESFire() desfire.CommMode {
	switch m {
	case CommMAC:
		return desfire.CommMAC
	case CommFull:
		return desfire.CommFull
	}
	return desfire.CommPlain
}

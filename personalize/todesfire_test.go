package personalize

import (
	"testing"

	"github.com/loopcard/loopcard/personalize/desfire"
)

func TestToDESFire(t *testing.T) {
	if got, want := (AID{0x01, 0x02, 0x03}).DESFire(), desfire.AID(0x030201); got != want {
		t.Errorf("AID 010203: got %06X, want %06X", uint32(got), uint32(want))
	}
	for _, c := range []struct {
		m    CommMode
		want desfire.CommMode
	}{
		{CommPlain, desfire.CommPlain},
		{CommMAC, desfire.CommMAC},
		{CommFull, desfire.CommFull},
		{CommMode(0x02), desfire.CommPlain},
	} {
		if got := c.m.DESFire(); got != c.want {
			t.Errorf("%v: got %v, want %v", c.m, got, c.want)
		}
	}
}

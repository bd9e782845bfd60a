package txid

import (
	"bytes"
	"testing"
	"time"
)

func TestNewIsUUIDv7InTimeOrder(t *testing.T) {
	rnd := bytes.Repeat([]byte{0xab}, 10)
	a := New(time.UnixMilli(1_760_000_000_000), rnd)
	if got, want := a.String(), "0199c82c-c000-7bab-abab-abababababab"; got != want {
		t.Fatalf("String() = %s, want %s", got, want)
	}
	if a[6]&0xf0 != 0x70 || a[8]&0xc0 != 0x80 {
		t.Fatalf("not a UUIDv7: %s", a)
	}
	b := New(time.UnixMilli(1_760_000_000_001), bytes.Repeat([]byte{0x00}, 10))
	if bytes.Compare(a[:], b[:]) >= 0 {
		t.Fatalf("ids do not sort by time: %s >= %s", a, b)
	}
}

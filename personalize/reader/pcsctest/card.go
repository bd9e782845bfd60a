package pcsctest

import (
	"bytes"
	"sync"
)

// EchoCard is a tiny stand-in card for testing readers and the vpcd bridge
// without the DESFire emulation: it answers the DESFire GetVersion command
// (90 60 00 00 00, then 90 AF 00 00 00 twice) with canned frames, echoes the
// data of any other APDU followed by 90 00, and counts power events. It is
// safe for concurrent use.
type EchoCard struct {
	mu       sync.Mutex
	uid      []byte
	version  int // next GetVersion frame, 0 when none is under way
	powered  bool
	powerOns int
	offs     int
	apdus    int
}

// EchoATR is the ATR of an EchoCard: a PC/SC contactless-storage-style ATR
// for an ISO 14443-4 card (DESFire's, as PC/SC readers report it).
var EchoATR = []byte{0x3B, 0x81, 0x80, 0x01, 0x80, 0x80}

// VersionFrames returns the three GetVersion response frames of an EchoCard
// with uid, each with its status word: hardware and software versions
// (91 AF), then UID, batch number, production week and year (91 00).
func VersionFrames(uid []byte) [][]byte {
	last := append(bytes.Clone(uid), 0xBA, 0x55, 0xC0, 0xFF, 0xEE, 0x21, 0x26, 0x91, 0x00)
	return [][]byte{
		{0x04, 0x01, 0x01, 0x33, 0x00, 0x1A, 0x05, 0x91, 0xAF},
		{0x04, 0x01, 0x01, 0x03, 0x00, 0x1A, 0x05, 0x91, 0xAF},
		last,
	}
}

// NewEchoCard returns an EchoCard with the given 7-byte UID.
func NewEchoCard(uid []byte) *EchoCard {
	return &EchoCard{uid: bytes.Clone(uid)}
}

// ATR implements vpcd.Card.
func (c *EchoCard) ATR() []byte { return bytes.Clone(EchoATR) }

// UID returns the card's UID; the vpcd bridge answers FF CA 00 00 with it.
func (c *EchoCard) UID() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.uid)
}

// PowerOn implements vpcd.Card.
func (c *EchoCard) PowerOn() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.powered = true
	c.powerOns++
}

// PowerOff implements vpcd.Card; it abandons a GetVersion under way.
func (c *EchoCard) PowerOff() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.powered = false
	c.offs++
	c.version = 0
}

// PowerCounts returns how many times the card was powered on and off.
func (c *EchoCard) PowerCounts() (on, off int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.powerOns, c.offs
}

// APDUs returns how many APDUs the card answered.
func (c *EchoCard) APDUs() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.apdus
}

// Transmit implements vpcd.Card.
func (c *EchoCard) Transmit(apdu []byte) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.apdus++
	if !c.powered {
		return []byte{0x6F, 0x00}
	}
	if len(apdu) < 4 {
		return []byte{0x67, 0x00}
	}
	if apdu[0] == 0x90 {
		frames := VersionFrames(c.uid)
		switch {
		case apdu[1] == 0x60:
			c.version = 1
			return frames[0]
		case apdu[1] == 0xAF && c.version > 0:
			f := frames[c.version]
			c.version = (c.version + 1) % len(frames)
			return f
		}
		c.version = 0
		return []byte{0x91, 0x1C} // illegal command code
	}
	var data []byte
	if len(apdu) > 5 {
		n := int(apdu[4])
		if 5+n <= len(apdu) {
			data = apdu[5 : 5+n]
		}
	}
	return append(bytes.Clone(data), 0x90, 0x00)
}

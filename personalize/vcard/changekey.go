package vcard

import (
	"crypto/subtle"
	"encoding/binary"

	"github.com/loopcard/loopcard/personalize/desfire"
)

// changeKey replaces a key. The key number's top bits choose the new key
// type at PICC level. Changing the authenticated key ends the
// authentication.
func (c *Card) changeKey(hdr, body []byte) (byte, []byte) {
	if c.auth == nil {
		return stPermissionDenied, nil
	}
	raw := hdr[0]
	target, st := c.keySlot(raw)
	if st != stOK {
		return st, nil
	}
	keyNo := raw & 0x3F
	newType := target.typ
	if c.sel == nil {
		switch raw & 0xC0 {
		case 0x00:
			newType = keyDES
		case 0x40:
			newType = key3K3DES
		case 0x80:
			newType = keyAES
		default:
			return stParameterError, nil
		}
		if c.p.ks1&0x01 == 0 || !c.masterAuthed() {
			return stPermissionDenied, nil
		}
	} else {
		ck := c.sel.ks1 >> 4
		switch {
		case keyNo == 0:
			if c.sel.ks1&0x01 == 0 || !c.masterAuthed() {
				return stPermissionDenied, nil
			}
		case ck == accessFree:
			if !c.authedWith(keyNo) {
				return stPermissionDenied, nil
			}
		case ck == accessNever:
			return stPermissionDenied, nil
		case !c.authedWith(ck):
			return stPermissionDenied, nil
		}
	}
	own := c.auth.keyNo == keyNo
	nk, ok := c.openChangeKey(hdr, body, *target, newType, own)
	if !ok {
		return stIntegrityError, nil
	}
	*target = nk
	if own {
		c.auth = nil
	}
	c.changed = true
	return stOK, nil
}

// openChangeKey reads the new key from the ChangeKey cryptogram, whose
// layout depends on the secure messaging in use.
func (c *Card) openChangeKey(hdr, pt []byte, old cardKey, t keyType, own bool) (cardKey, bool) {
	l := t.keyLen()
	nk := cardKey{typ: t}
	switch c.auth.sess.(type) {
	case ev2Adapter:
		// own: key || ver; other: (key ^ old) || ver || CRC32(key)
		want := l + 1
		if !own {
			want += 4
		}
		if len(pt) != want {
			return nk, false
		}
		nk.value = xorKey(pt[:l], old, own)
		nk.version = pt[l]
		if !own && binary.LittleEndian.Uint32(pt[l+1:]) != desfire.CRC32(nk.value) {
			return nk, false
		}
	case ev1Session:
		// key || [ver] || CRC32(cmd||keyNo||key||[ver]) || [CRC32(new)] || zeros
		n := l
		if t == keyAES {
			n++
		}
		need := n + 4
		if !own {
			need += 4
		}
		if len(pt) < need || !allZero(pt[need:]) || len(pt)-need >= 16 {
			return nk, false
		}
		crc := desfire.CRC32(append([]byte{cmdChangeKey, hdr[0]}, pt[:n]...))
		if binary.LittleEndian.Uint32(pt[n:]) != crc {
			return nk, false
		}
		nk.value = xorKey(pt[:l], old, own)
		if !own && binary.LittleEndian.Uint32(pt[n+4:]) != desfire.CRC32(nk.value) {
			return nk, false
		}
		if t == keyAES {
			nk.version = pt[l]
		} else {
			nk.version = parityVersion(nk.value)
		}
	case legacySession:
		// key || [ver] || CRC16(key||[ver]) || [CRC16(new)] || zeros
		n := l
		if t == keyAES {
			n++
		}
		need := n + 2
		if !own {
			need += 2
		}
		if len(pt) < need || !allZero(pt[need:]) || len(pt)-need >= 8 {
			return nk, false
		}
		if binary.LittleEndian.Uint16(pt[n:]) != desfire.CRC16(pt[:n]) {
			return nk, false
		}
		nk.value = xorKey(pt[:l], old, own)
		if !own && binary.LittleEndian.Uint16(pt[n+2:]) != desfire.CRC16(nk.value) {
			return nk, false
		}
		if t == keyAES {
			nk.version = pt[l]
		} else {
			nk.version = parityVersion(nk.value)
		}
	default:
		return nk, false
	}
	return nk, true
}

// xorKey returns b, or b XOR the old key when another key is changed.
func xorKey(b []byte, old cardKey, own bool) []byte {
	out := append([]byte(nil), b...)
	if !own && len(old.value) == len(out) {
		subtle.XORBytes(out, out, old.value)
	}
	return out
}

// parityVersion is the key version DES keys carry in the parity bits of
// their first eight bytes.
func parityVersion(k []byte) byte {
	var v byte
	for i := 0; i < 8; i++ {
		v = v<<1 | k[i]&1
	}
	return v
}

package vcard

import (
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
	var scheme desfire.AuthScheme
	switch c.auth.sess.(type) {
	case ev2Adapter:
		scheme = desfire.AuthEV2
	case ev1Session:
		scheme = desfire.AuthEV1
	case legacySession:
		scheme = desfire.AuthLegacy
	default:
		return cardKey{}, false
	}
	v, ver, err := desfire.OpenChangeKey(scheme, hdr[0], pt, t.keyLen(), t == keyAES, own, old.value)
	if err != nil {
		return cardKey{}, false
	}
	if t != keyAES && scheme != desfire.AuthEV2 {
		ver = parityVersion(v)
	}
	return cardKey{typ: t, value: v, version: ver}, true
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

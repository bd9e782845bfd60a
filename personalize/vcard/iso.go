package vcard

import (
	"crypto/subtle"
	"io"
	"slices"

	"github.com/loopcard/loopcard/personalize/desfire"
)

// The ISO/IEC 7816-4 layer (CLA 00) of a DESFire EV1/EV2, as the MF3D(H)x3
// data sheet describes it in its section "ISO/IEC 7816-4 commands":
// SELECT FILE, READ BINARY, UPDATE BINARY, READ RECORD, GET CHALLENGE,
// EXTERNAL AUTHENTICATE and INTERNAL AUTHENTICATE on the applications and
// files that were created with ISO file identifiers and DF names. Other
// instructions answer 6D 00, as a real card does.

// ISO instructions.
const (
	insSelect       = 0xA4
	insReadBinary   = 0xB0
	insUpdateBinary = 0xD6
	insReadRecord   = 0xB2
	insGetChallenge = 0x84
	insExternalAuth = 0x82
	insInternalAuth = 0x88
)

// piccDFName is the DF name of the PICC level (NXP's RID D276000085, PIX
// 0100): SELECT by this name selects the PICC level.
var piccDFName = []byte{0xD2, 0x76, 0x00, 0x00, 0x85, 0x01, 0x00}

// piccFID is the MF's file identifier.
const piccFID = 0x3F00

// reservedFID reports file identifiers ISO/IEC 7816-4 keeps for itself (MF,
// the current DF, reserved).
func reservedFID(fid uint16) bool {
	return fid == piccFID || fid == 0x3FFF || fid == 0xFFFF
}

// More ISO/IEC 7816-4 status words.
var (
	swEOF              = []byte{0x62, 0x82}
	swAuthFailed       = []byte{0x63, 0x00}
	swWrongFileType    = []byte{0x69, 0x81}
	swSecurityStatus   = []byte{0x69, 0x82}
	swNoCurrentEF      = []byte{0x69, 0x86}
	swCondNotSatisfied = []byte{0x69, 0x85}
	swFileNotFound     = []byte{0x6A, 0x82}
	swRecordNotFound   = []byte{0x6A, 0x83}
	swRefNotFound      = []byte{0x6A, 0x88}
	swWrongOffset      = []byte{0x6B, 0x00}
)

// isoAuth is an ISO authentication in progress: GET CHALLENGE drew
// challenge, EXTERNAL AUTHENTICATE proved the reader's key and left rpcd1
// and the running IV for INTERNAL AUTHENTICATE.
type isoAuth struct {
	challenge []byte
	alg       byte
	keyNo     byte
	key       cardKey
	rpcd1, iv []byte
}

// isoLe is the Le of a short APDU body (0 for none; 256 when coded 00).
func isoLe(b []byte) int {
	var le int
	switch {
	case len(b) == 1:
		le = int(b[0])
	case len(b) >= 2 && len(b) == 2+int(b[0]):
		le = int(b[len(b)-1])
	default:
		return 0
	}
	if le == 0 {
		return 256
	}
	return le
}

// iso runs one ISO/IEC 7816-4 command and returns data and status word.
func (c *Card) iso(ins, p1, p2 byte, data []byte, le int) ([]byte, []byte) {
	// Any ISO command ends an unfinished native exchange.
	c.chain, c.out, c.splits, c.authStep = nil, nil, nil, nil
	if ins != insExternalAuth && ins != insInternalAuth {
		c.isoAuth = nil
	}
	switch ins {
	case insGetChallenge:
		return c.getChallenge(p1, p2, data, le)
	case insSelect:
		return c.isoSelect(p1, p2, data)
	case insReadBinary:
		return c.readBinary(p1, p2, data, le)
	case insUpdateBinary:
		return c.updateBinary(p1, p2, data)
	case insReadRecord:
		return c.readRecord(p1, p2, data, le)
	case insExternalAuth:
		return c.externalAuth(p1, p2, data)
	case insInternalAuth:
		return c.internalAuth(p1, p2, data, le)
	}
	return nil, swINSNotSupported
}

// isoSelect is SELECT FILE: P1 00 by file identifier (3F00 the PICC level,
// an application's DF, or an EF of the selected application), 02 an EF of
// the selected application, 04 by DF name (the PICC's, or an application's);
// P2 00 or 0C (no FCI is returned either way).
func (c *Card) isoSelect(p1, p2 byte, data []byte) ([]byte, []byte) {
	if p2 != 0x00 && p2 != 0x0C {
		return nil, swWrongP1P2
	}
	switch p1 {
	case 0x04:
		if len(data) < 1 || len(data) > 16 {
			return nil, swWrongLength
		}
		if slices.Equal(data, piccDFName) {
			c.selectDF(nil)
			return nil, swOK
		}
		for _, a := range c.p.apps {
			if a.iso && len(a.dfName) > 0 && slices.Equal(a.dfName, data) {
				c.selectDF(a)
				return nil, swOK
			}
		}
		return nil, swFileNotFound
	case 0x00, 0x02:
		if p1 == 0x00 && len(data) == 0 {
			c.selectDF(nil)
			return nil, swOK
		}
		if len(data) != 2 {
			return nil, swWrongLength
		}
		fid := uint16(data[0])<<8 | uint16(data[1])
		if p1 == 0x00 && fid == piccFID {
			c.selectDF(nil)
			return nil, swOK
		}
		if c.sel != nil {
			for n, f := range c.sel.files {
				if f.isoFID == fid && f.isoFID != 0 {
					c.ef = &n
					return nil, swOK
				}
			}
		}
		if p1 == 0x00 {
			for _, a := range c.p.apps {
				if a.iso && a.isoFID == fid {
					c.selectDF(a)
					return nil, swOK
				}
			}
		}
		return nil, swFileNotFound
	}
	return nil, swWrongP1P2
}

// selectDF selects the PICC level (nil) or an application as
// SelectApplication does: the transaction is dropped, and so is the
// authentication.
func (c *Card) selectDF(a *app) {
	c.abortTransaction()
	c.auth = nil
	c.sel = a
	c.ef = nil
}

// isoFile resolves the file of READ/UPDATE BINARY and READ RECORD: a short
// file identifier (the native file number) when sfi > 0, which also selects
// it, else the current EF.
func (c *Card) isoFile(sfi byte) (*file, []byte) {
	if c.sel == nil {
		return nil, swNoCurrentEF
	}
	if sfi != 0 {
		f, ok := c.sel.files[sfi]
		if !ok {
			return nil, swFileNotFound
		}
		n := sfi
		c.ef = &n
		return f, nil
	}
	if c.ef == nil {
		return nil, swNoCurrentEF
	}
	f, ok := c.sel.files[*c.ef]
	if !ok {
		c.ef = nil
		return nil, swNoCurrentEF
	}
	return f, nil
}

// isoAccess checks the file's access rights for an ISO command; the mode is
// the file's when the right comes from the authenticated key, plain when it
// is free. Without a right: 69 82. A MAC or full file read through an EV1
// session (AuthenticateISO/AES, or ISO authentication) carries EV1 secure
// messaging with the INS as command code and P1 P2 as header; EV2 secure
// messaging of ISO commands is not modelled, and refused with 69 82.
func (c *Card) isoAccess(f *file, rights ...right) (commMode, []byte) {
	m, st := c.access(f, rights...)
	if st != stOK {
		return commPlain, swSecurityStatus
	}
	if _, ev2 := sessionOf[ev2Adapter](c); ev2 && m != commPlain {
		return commPlain, swSecurityStatus
	}
	if _, legacy := sessionOf[legacySession](c); legacy && m != commPlain {
		return commPlain, swSecurityStatus
	}
	return m, nil
}

// binaryTarget parses P1 P2 of READ/UPDATE BINARY: with bit 8 of P1 set,
// P1 bits 5-1 are a short file identifier and P2 the offset; else P1 P2
// is a 15-bit offset into the current EF.
func (c *Card) binaryTarget(p1, p2 byte) (*file, int, []byte) {
	sfi, off := byte(0), int(p1)<<8|int(p2)
	if p1&0x80 != 0 {
		if p1&0x60 != 0 {
			return nil, 0, swWrongP1P2
		}
		sfi, off = p1&0x1F, int(p2)
	}
	f, sw := c.isoFile(sfi)
	if sw != nil {
		return nil, 0, sw
	}
	if f.typ != fileStd && f.typ != fileBackup {
		return nil, 0, swWrongFileType
	}
	return f, off, nil
}

// isoWrap protects a response's data by the session when the mode asks
// for it (the ISO INS is the command code, P1 P2 the header).
func (c *Card) isoWrap(data []byte, mode commMode) ([]byte, []byte) {
	if c.auth == nil || mode == commPlain {
		return data, nil
	}
	out, err := c.auth.sess.wrap(stOK, data, mode)
	if err != nil {
		c.auth = nil
		return nil, swSecurityStatus
	}
	return out, nil
}

func (c *Card) readBinary(p1, p2 byte, data []byte, le int) ([]byte, []byte) {
	if len(data) != 0 {
		return nil, swWrongLength
	}
	f, off, sw := c.binaryTarget(p1, p2)
	if sw != nil {
		return nil, sw
	}
	mode, sw := c.isoAccess(f, rightRead, rightRW)
	if sw != nil {
		return nil, sw
	}
	if off >= len(f.data) {
		return nil, swWrongOffset
	}
	n, sw := min(le, len(f.data)-off), swOK
	if le == 0 {
		n = min(256, len(f.data)-off)
	}
	if le > len(f.data)-off {
		sw = swEOF
	}
	if c.auth != nil && mode != commPlain {
		// The session's MAC or cryptogram rides on the data; it continues
		// over the unwrapped request first, as for a native read.
		if _, err := c.auth.sess.unwrap(insReadBinary, []byte{p1, p2}, nil, mode); err != nil {
			c.auth = nil
			return nil, swSecurityStatus
		}
	}
	out, wsw := c.isoWrap(slices.Clone(f.data[off:off+n]), mode)
	if wsw != nil {
		return nil, wsw
	}
	return out, sw
}

func (c *Card) updateBinary(p1, p2 byte, data []byte) ([]byte, []byte) {
	if len(data) == 0 {
		return nil, swWrongLength
	}
	f, off, sw := c.binaryTarget(p1, p2)
	if sw != nil {
		return nil, sw
	}
	mode, sw := c.isoAccess(f, rightWrite, rightRW)
	if sw != nil {
		return nil, sw
	}
	if c.auth != nil && mode != commPlain {
		plain, err := c.auth.sess.unwrap(insUpdateBinary, []byte{p1, p2}, data, mode)
		if err != nil {
			c.auth = nil
			return nil, swSecurityStatus
		}
		data = plain
	}
	if off+len(data) > len(f.data) {
		return nil, swWrongOffset
	}
	if f.typ == fileStd {
		copy(f.data[off:], data)
	} else {
		// A backup file changes on CommitTransaction, as with WriteData.
		if f.pending == nil {
			f.pending = slices.Clone(f.data)
		}
		copy(f.pending[off:], data)
	}
	c.changed = f.typ == fileStd
	out, wsw := c.isoWrap(nil, mode)
	if wsw != nil {
		return nil, wsw
	}
	return out, swOK
}

// readRecord is READ RECORD of one record: P1 the record number (1 the
// oldest record of a linear file, the newest of a cyclic one, as ISO/IEC
// 7816-4 numbers them), P2 the short file identifier in bits 8-4 (0: the
// current EF) and 100 in bits 3-1.
func (c *Card) readRecord(p1, p2 byte, data []byte, le int) ([]byte, []byte) {
	if len(data) != 0 {
		return nil, swWrongLength
	}
	if p2&0x07 != 0x04 || p1 == 0 {
		return nil, swWrongP1P2
	}
	f, sw := c.isoFile(p2 >> 3)
	if sw != nil {
		return nil, sw
	}
	if f.typ != fileLinearRecord && f.typ != fileCyclicRecord {
		return nil, swWrongFileType
	}
	mode, sw := c.isoAccess(f, rightRead, rightRW)
	if sw != nil {
		return nil, sw
	}
	n := int(p1)
	if n > len(f.records) {
		return nil, swRecordNotFound
	}
	rec := f.records[n-1]
	if f.typ == fileCyclicRecord {
		rec = f.records[len(f.records)-n]
	}
	if le != 0 && le < len(rec) {
		return nil, swWrongLength
	}
	if c.auth != nil && mode != commPlain {
		if _, err := c.auth.sess.unwrap(insReadRecord, []byte{p1, p2}, nil, mode); err != nil {
			c.auth = nil
			return nil, swSecurityStatus
		}
	}
	out, wsw := c.isoWrap(slices.Clone(rec), mode)
	if wsw != nil {
		return nil, wsw
	}
	return out, swOK
}

// getChallenge draws RPICC1 of an ISO authentication: 8 bytes for
// (2K3)DES keys, 16 for 3K3DES and AES.
func (c *Card) getChallenge(p1, p2 byte, data []byte, le int) ([]byte, []byte) {
	if p1 != 0 || p2 != 0 {
		return nil, swWrongP1P2
	}
	if len(data) != 0 || (le != 8 && le != 16) {
		return nil, swWrongLength
	}
	ch := make([]byte, le)
	if _, err := io.ReadFull(c.rand, ch); err != nil {
		return nil, swNoInfo
	}
	c.isoAuth = &isoAuth{challenge: ch}
	return slices.Clone(ch), swOK
}

// isoKey resolves P1 (algorithm: 00 by the key, 02 DES/2K3DES, 04 3K3DES,
// 09 AES) and P2 (00 the master key of the selected level, 80|n key n of
// the selected application) of EXTERNAL and INTERNAL AUTHENTICATE.
func (c *Card) isoKey(p1, p2 byte) (byte, cardKey, []byte) {
	if p2 != 0 && p2&0x80 == 0 {
		return 0, cardKey{}, swWrongP1P2
	}
	keyNo := p2 & 0x0F
	if p2&0x70 != 0 {
		return 0, cardKey{}, swWrongP1P2
	}
	k, st := c.keySlot(keyNo)
	if st != stOK {
		return 0, cardKey{}, swRefNotFound
	}
	want := map[keyType]byte{keyDES: 0x02, key3K3DES: 0x04, keyAES: 0x09}[k.typ]
	if p1 != 0 && p1 != want {
		return 0, cardKey{}, swWrongP1P2
	}
	return keyNo, k.clone(), nil
}

// isoCBC runs the key's cipher in CBC mode from iv.
func isoCBC(k cardKey, iv, data []byte, encrypt bool) (out, next []byte, err error) {
	if k.typ == keyAES {
		return aesCBC(k.value, iv, data, encrypt)
	}
	if encrypt {
		return desfire.ISOEncrypt(k.value, iv, data)
	}
	return desfire.ISODecrypt(k.value, iv, data)
}

// externalAuth checks E(K, RPCD1 || RPICC1) from IV zero against the
// challenge of GET CHALLENGE (one try: the challenge is spent).
func (c *Card) externalAuth(p1, p2 byte, data []byte) ([]byte, []byte) {
	a := c.isoAuth
	c.isoAuth = nil
	c.auth = nil
	if a == nil || a.rpcd1 != nil {
		return nil, swCondNotSatisfied
	}
	keyNo, k, sw := c.isoKey(p1, p2)
	if sw != nil {
		return nil, sw
	}
	n := len(a.challenge)
	if n != 8 && k.typ == keyDES || n != 16 && k.typ != keyDES {
		return nil, swCondNotSatisfied
	}
	if len(data) != 2*n {
		return nil, swWrongLength
	}
	bs := 8
	if k.typ == keyAES {
		bs = 16
	}
	pt, iv, err := isoCBC(k, make([]byte, bs), data, false)
	if err != nil || subtle.ConstantTimeCompare(pt[n:], a.challenge) != 1 {
		return nil, swAuthFailed
	}
	c.isoAuth = &isoAuth{alg: p1, keyNo: keyNo, key: k, rpcd1: pt[:n], iv: iv}
	return nil, swOK
}

// internalAuth answers E(K, RPICC2 || RPCD2) with the IV running on from
// EXTERNAL AUTHENTICATE and opens EV1 secure messaging with the session key
// made of RPCD1 and RPICC2, as AuthenticateISO/AuthenticateAES do.
func (c *Card) internalAuth(p1, p2 byte, data []byte, le int) ([]byte, []byte) {
	a := c.isoAuth
	c.isoAuth = nil
	if a == nil || a.rpcd1 == nil {
		return nil, swCondNotSatisfied
	}
	keyNo, _, sw := c.isoKey(p1, p2)
	if sw != nil {
		return nil, sw
	}
	n := len(a.rpcd1)
	if keyNo != a.keyNo || len(data) != n || (le != 0 && le != 2*n && le != 256) {
		return nil, swWrongLength
	}
	rpicc2 := make([]byte, n)
	if _, err := io.ReadFull(c.rand, rpicc2); err != nil {
		return nil, swNoInfo
	}
	out, _, err := isoCBC(a.key, a.iv, slices.Concat(rpicc2, data), true)
	if err != nil {
		return nil, swNoInfo
	}
	var sess session
	switch a.key.typ {
	case keyAES:
		var s *desfire.EV1Session
		s, err = desfire.NewEV1Session(desfire.EV1SessionKeyAES(a.rpcd1, rpicc2))
		sess = ev1Session{s: s, bs: 16}
	default:
		sess, err = isoSession(a.key, a.rpcd1, rpicc2, nil)
	}
	if err != nil {
		return nil, swNoInfo
	}
	if c.sel == nil {
		keyNo = 0
	}
	c.auth = &authState{keyNo: keyNo, sess: sess}
	return out, swOK
}

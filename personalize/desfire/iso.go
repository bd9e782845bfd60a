package desfire

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"errors"
	"fmt"
)

// ISO/IEC 7816-4 commands (CLA 00) of DESFire EV1/EV2, as the MF3D(H)x3
// data sheet lists them: SELECT FILE by DF name and by file identifier,
// READ BINARY, UPDATE BINARY and READ RECORD on files created with ISO file
// identifiers, GET CHALLENGE with EXTERNAL and INTERNAL AUTHENTICATE.

// ISO/IEC 7816-4 instruction bytes.
const (
	InsSelect       byte = 0xA4
	InsReadBinary   byte = 0xB0
	InsUpdateBinary byte = 0xD6
	InsReadRecord   byte = 0xB2
	InsGetChallenge byte = 0x84
	InsExternalAuth byte = 0x82
	InsInternalAuth byte = 0x88
)

// PICCDFName is the DF name of a DESFire's PICC level; SELECT by it selects
// the PICC level (as SelectApplication 000000 does).
var PICCDFName = []byte{0xD2, 0x76, 0x00, 0x00, 0x85, 0x01, 0x00}

// SW is an ISO/IEC 7816-4 status word (SW1 SW2).
type SW uint16

// Status words a DESFire answers to ISO commands.
const (
	SWOK               SW = 0x9000
	SWEndOfFile        SW = 0x6282
	SWAuthFailed       SW = 0x6300
	SWWrongLength      SW = 0x6700
	SWWrongFileType    SW = 0x6981
	SWSecurityStatus   SW = 0x6982
	SWCondNotSatisfied SW = 0x6985
	SWNoCurrentEF      SW = 0x6986
	SWFileNotFound     SW = 0x6A82
	SWRecordNotFound   SW = 0x6A83
	SWWrongP1P2        SW = 0x6A86
	SWRefNotFound      SW = 0x6A88
	SWWrongOffset      SW = 0x6B00
	SWINSNotSupported  SW = 0x6D00
)

// ErrISOStatus matches every *ISOStatusError.
var ErrISOStatus = errors.New("desfire: ISO status")

// ISOStatusError is an ISO command answered with a status word other than
// 90 00 (or 62 82 where a short read is allowed).
type ISOStatusError struct {
	Ins byte
	SW  SW
}

func (e *ISOStatusError) Error() string {
	return fmt.Sprintf("desfire: ISO command 0x%02X: status %04X", e.Ins, uint16(e.SW))
}

// Is matches ErrISOStatus, and an *ISOStatusError with the same SW.
func (e *ISOStatusError) Is(target error) bool {
	if target == ErrISOStatus {
		return true
	}
	t, ok := target.(*ISOStatusError)
	return ok && t.SW == e.SW
}

// isoExchange sends CLA 00 INS P1 P2 [Lc data] [Le] and splits the answer.
// le < 0 sends no Le; le 256 is coded 00.
func (c *Card) isoExchange(ins, p1, p2 byte, data []byte, le int) ([]byte, SW, error) {
	if len(data) > 255 || le > 256 {
		return nil, 0, fmt.Errorf("%w: ISO command too long", ErrMalformed)
	}
	apdu := []byte{0x00, ins, p1, p2}
	if len(data) > 0 {
		apdu = append(append(apdu, byte(len(data))), data...)
	}
	if le >= 0 {
		apdu = append(apdu, byte(le))
	}
	resp, err := c.t.Transmit(apdu)
	if err != nil {
		return nil, 0, fmt.Errorf("desfire: transmit ISO command 0x%02X: %w", ins, err)
	}
	if len(resp) < 2 {
		return nil, 0, fmt.Errorf("%w: ISO command 0x%02X: response of %d bytes", ErrMalformed, ins, len(resp))
	}
	sw := SW(resp[len(resp)-2])<<8 | SW(resp[len(resp)-1])
	c.log.Debug("desfire iso", "ins", ins, "lc", len(data), "resp_len", len(resp)-2, "sw", uint16(sw))
	return resp[:len(resp)-2], sw, nil
}

// isoRun runs an ISO command, failing on a status other than 90 00 (and
// 62 82 when short is true). Like the card, it forgets the session on an
// error only where the card does: a failed secure-messaging check.
func (c *Card) isoRun(ins, p1, p2 byte, data []byte, le int, short bool) ([]byte, SW, error) {
	body, sw, err := c.isoExchange(ins, p1, p2, data, le)
	if err != nil {
		return nil, 0, err
	}
	if sw != SWOK && !(short && sw == SWEndOfFile) {
		return nil, sw, &ISOStatusError{Ins: ins, SW: sw}
	}
	return body, sw, nil
}

// SelectDFName selects the PICC level (PICCDFName) or the application with
// DF name name (SELECT, P1 04, P2 0C). It ends the authentication.
func (c *Card) SelectDFName(name []byte) error {
	if len(name) < 1 || len(name) > 16 {
		return fmt.Errorf("%w: DF name of %d bytes", ErrMalformed, len(name))
	}
	c.dropSession()
	if _, _, err := c.isoRun(InsSelect, 0x04, 0x0C, name, -1, false); err != nil {
		return err
	}
	c.aid = 0xFFFFFF // an application, by name: only the card knows which
	if subtle.ConstantTimeCompare(name, PICCDFName) == 1 {
		c.aid = 0
	}
	return nil
}

// SelectFileID selects by ISO file identifier (SELECT, P1 00, P2 0C): 3F00
// the PICC level, an application's DF (which ends the authentication), or
// an EF of the selected application.
func (c *Card) SelectFileID(fid uint16) error {
	_, _, err := c.isoRun(InsSelect, 0x00, 0x0C, []byte{byte(fid >> 8), byte(fid)}, -1, false)
	return err
}

// isoMode is the protection of an ISO file command: the file's mode in an
// EV1 session, plain otherwise (the card refuses MAC and full files through
// ISO commands in other sessions).
func (c *Card) isoMode(comm CommMode) CommMode {
	if c.scheme == AuthEV1 {
		return comm
	}
	return CommPlain
}

// isoRead runs READ BINARY or READ RECORD with EV1 secure messaging when
// the mode asks for it: the command's CMAC (over INS, P1, P2) is computed
// and not sent, the answer carries a CMAC or is enciphered with a CRC32;
// Le is the length of the data, without the MAC or the padding.
func (c *Card) isoRead(ins, p1, p2 byte, le, want int, comm CommMode, short bool) ([]byte, error) {
	mode := c.isoMode(comm)
	if mode != CommPlain {
		if _, err := c.ev1.wrapPayload(ins, []byte{p1, p2}, nil, mode); err != nil {
			return nil, err
		}
		if mode == CommFull && want <= 0 {
			return nil, fmt.Errorf("%w: an enciphered ISO read needs its length", ErrUnsupported)
		}
		// Le counts the data; the MAC or the padding and CRC come on top.
	}
	body, _, err := c.isoRun(ins, p1, p2, nil, le, short)
	if err != nil {
		if mode != CommPlain {
			c.dropSession()
		}
		return nil, err
	}
	if mode == CommPlain {
		return body, nil
	}
	out, err := c.ev1.unwrapResponseBody(StatusOK, body, mode, want)
	if err != nil {
		c.dropSession()
		return nil, fmt.Errorf("ISO command 0x%02X: %w", ins, err)
	}
	return out, nil
}

// ReadBinary reads n bytes (1-256; with EV1 secure messaging fewer, so that
// MAC or cryptogram fit) at offset of a data file: of the file with short
// file identifier sfi (its file number, 1-31; this also makes it the current
// EF), or of the current EF when sfi is 0. comm is the file's mode.
func (c *Card) ReadBinary(sfi byte, offset, n int, comm CommMode) ([]byte, error) {
	p1, p2, err := binaryP1P2(sfi, offset)
	if err != nil {
		return nil, err
	}
	if n < 1 || n > 256 {
		return nil, fmt.Errorf("%w: READ BINARY of %d bytes", ErrMalformed, n)
	}
	b, err := c.isoRead(InsReadBinary, p1, p2, n, n, comm, false)
	if err != nil {
		return nil, err
	}
	if len(b) != n {
		return nil, fmt.Errorf("%w: READ BINARY: %d bytes, want %d", ErrMalformed, len(b), n)
	}
	return b, nil
}

// UpdateBinary writes data at offset of a data file addressed as in
// ReadBinary. A backup file changes on CommitTransaction.
func (c *Card) UpdateBinary(sfi byte, offset int, data []byte, comm CommMode) error {
	p1, p2, err := binaryP1P2(sfi, offset)
	if err != nil {
		return err
	}
	if len(data) == 0 {
		return fmt.Errorf("%w: nothing to write", ErrMalformed)
	}
	mode := c.isoMode(comm)
	payload := data
	if mode != CommPlain {
		if payload, err = c.ev1.wrapPayload(InsUpdateBinary, []byte{p1, p2}, data, mode); err != nil {
			return err
		}
		payload = payload[2:]
	}
	body, _, err := c.isoRun(InsUpdateBinary, p1, p2, payload, -1, false)
	if err != nil {
		if mode != CommPlain {
			c.dropSession()
		}
		return err
	}
	if mode != CommPlain {
		if _, err := c.ev1.unwrapResponseBody(StatusOK, body, mode, -1); err != nil {
			c.dropSession()
			return fmt.Errorf("UPDATE BINARY: %w", err)
		}
	}
	return nil
}

func binaryP1P2(sfi byte, offset int) (byte, byte, error) {
	switch {
	case sfi > 31:
		return 0, 0, fmt.Errorf("%w: short file identifier %d", ErrMalformed, sfi)
	case sfi > 0 && (offset < 0 || offset > 255):
		return 0, 0, fmt.Errorf("%w: offset %d with a short file identifier", ErrMalformed, offset)
	case sfi > 0:
		return 0x80 | sfi, byte(offset), nil
	case offset < 0 || offset > 0x7FFF:
		return 0, 0, fmt.Errorf("%w: offset %d", ErrMalformed, offset)
	}
	return byte(offset >> 8), byte(offset), nil
}

// ReadRecord reads record number rec (1 the oldest of a linear file, the
// newest of a cyclic one) of size recordSize from the record file with short
// file identifier sfi (0: the current EF).
func (c *Card) ReadRecord(sfi byte, rec, recordSize int, comm CommMode) ([]byte, error) {
	if sfi > 31 || rec < 1 || rec > 255 || recordSize < 1 || recordSize > 256 {
		return nil, fmt.Errorf("%w: READ RECORD %d of file %d", ErrMalformed, rec, sfi)
	}
	b, err := c.isoRead(InsReadRecord, byte(rec), sfi<<3|0x04, recordSize, recordSize, comm, false)
	if err != nil {
		return nil, err
	}
	if len(b) != recordSize {
		return nil, fmt.Errorf("%w: READ RECORD: %d bytes, want %d", ErrMalformed, len(b), recordSize)
	}
	return b, nil
}

// GetChallenge asks the card for n (8 or 16) random bytes, the first step
// of ISO authentication.
func (c *Card) GetChallenge(n int) ([]byte, error) {
	b, _, err := c.isoRun(InsGetChallenge, 0, 0, nil, n, false)
	if err != nil {
		return nil, err
	}
	if len(b) != n {
		return nil, fmt.Errorf("%w: GET CHALLENGE: %d bytes, want %d", ErrMalformed, len(b), n)
	}
	return b, nil
}

// AuthenticateISO7816 is ISO authentication with GET CHALLENGE, EXTERNAL
// AUTHENTICATE and INTERNAL AUTHENTICATE, as DESFire EV1/EV2 take it: the
// reader sends E(K, RPCD1 || RPICC1) from IV zero, then RPCD2; the card
// answers E(K, RPICC2 || RPCD2) with the IV running on. EV1 secure messaging
// follows with the session key of AuthenticateISO/AuthenticateAES made of
// RPCD1 and RPICC2. keyNo is a key of the selected application, or 0 at the
// PICC level. Errors: *ISOStatusError (SWAuthFailed for a wrong key),
// ErrIntegrity when the card does not prove the key.
func (c *Card) AuthenticateISO7816(keyNo byte, key Key) error {
	c.dropSession()
	var alg byte
	var b cipher.Block
	var err error
	n := 16
	switch key.Type() {
	case KeyDES, Key2K3DES:
		alg, n = 0x02, 8
		b, err = newDESBlock(key.bytes())
	case Key3K3DES:
		alg = 0x04
		b, err = newDESBlock(key.bytes())
	case KeyAES:
		alg = 0x09
		b, err = aes.NewCipher(key.bytes())
	default:
		return fmt.Errorf("%w: no key", ErrMalformed)
	}
	if err != nil {
		return err
	}
	p2 := byte(0)
	if c.aid != 0 {
		p2 = 0x80 | keyNo&0x0F
	}
	rpicc1, err := c.GetChallenge(n)
	if err != nil {
		return err
	}
	rpcd1, err := c.random(n)
	if err != nil {
		return err
	}
	ct := cbcEncrypt(b, make([]byte, b.BlockSize()), append(append([]byte(nil), rpcd1...), rpicc1...))
	iv := ct[len(ct)-b.BlockSize():]
	if _, _, err := c.isoRun(InsExternalAuth, alg, p2, ct, -1, false); err != nil {
		return err
	}
	rpcd2, err := c.random(n)
	if err != nil {
		return err
	}
	ans, _, err := c.isoRun(InsInternalAuth, alg, p2, rpcd2, 2*n, false)
	if err != nil {
		return err
	}
	if len(ans) != 2*n {
		return fmt.Errorf("%w: INTERNAL AUTHENTICATE: %d bytes", ErrMalformed, len(ans))
	}
	pt := cbcDecrypt(b, iv, ans)
	if subtle.ConstantTimeCompare(pt[n:], rpcd2) != 1 {
		return fmt.Errorf("%w: INTERNAL AUTHENTICATE: card did not prove the key", ErrIntegrity)
	}
	rpicc2 := pt[:n]
	var s *EV1Session
	switch key.Type() {
	case KeyAES:
		s, err = NewEV1Session(EV1SessionKeyAES(rpcd1, rpicc2))
	case Key3K3DES:
		s, err = NewEV1SessionDES(Session3K3DESKey(rpcd1, rpicc2))
	default:
		s, err = NewEV1SessionDES(LegacySessionKey(key.bytes(), rpcd1, rpicc2))
	}
	if err != nil {
		return err
	}
	c.scheme, c.ev1, c.keyNo = AuthEV1, s, keyNo
	c.log.Debug("desfire authenticated", "scheme", "iso7816", "key_no", keyNo)
	return nil
}

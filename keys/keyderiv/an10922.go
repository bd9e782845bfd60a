package keyderiv

import (
	"crypto/aes"
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/loopcard/loopcard/keys/cmac"
)

// ErrDiversificationInput is returned for an AN10922 input M that the HSM
// cannot diversify exactly. CKM_AES_CMAC over 0x01||M equals AN10922 only
// when M is 16 to 31 bytes: shorter inputs are padded differently by the
// two, and AN10922 allows at most 31 bytes. Such inputs are refused, never
// computed wrongly.
var ErrDiversificationInput = errors.New("AN10922 input cannot be diversified in the HSM")

// Bounds of M for HSM diversification.
const (
	MinDiversificationInput = 16
	MaxDiversificationInput = 31
)

// DiversificationInput builds the AN10922 input M = UID || AID || SystemID
// of the design: a 7-byte UID, a 3-byte AID (000000 for the PICC level) and
// a system identifier of 6 to 21 bytes, so that M is 16 to 31 bytes.
// Errors wrap ErrDiversificationInput.
func DiversificationInput(uid, aid, systemID []byte) ([]byte, error) {
	if len(uid) != 7 {
		return nil, fmt.Errorf("%w: the UID is %d bytes, want 7", ErrDiversificationInput, len(uid))
	}
	if len(aid) != 3 {
		return nil, fmt.Errorf("%w: the AID is %d bytes, want 3", ErrDiversificationInput, len(aid))
	}
	m := make([]byte, 0, len(uid)+len(aid)+len(systemID))
	m = append(append(append(m, uid...), aid...), systemID...)
	if err := CheckHSMInput(m); err != nil {
		return nil, fmt.Errorf("%w (the system identifier must be 6 to 21 bytes)", err)
	}
	return m, nil
}

// CheckHSMInput returns an error wrapping ErrDiversificationInput unless M
// is MinDiversificationInput to MaxDiversificationInput bytes: the inputs
// for which the HSM's CKM_AES_CMAC over 0x01||M equals AN10922.
func CheckHSMInput(m []byte) error {
	switch {
	case len(m) < MinDiversificationInput:
		return fmt.Errorf("%w: M is %d bytes; the HSM's CMAC equals AN10922 only from %d bytes: use a longer system identifier",
			ErrDiversificationInput, len(m), MinDiversificationInput)
	case len(m) > MaxDiversificationInput:
		return fmt.Errorf("%w: M is %d bytes; AN10922 allows at most %d", ErrDiversificationInput, len(m), MaxDiversificationInput)
	}
	return nil
}

// AN10922 is the pure-Go reference of NXP AN10922 AES-128 key
// diversification (section 2.2): D = 0x01 || M, padded with 80 00.. to 32
// bytes and its last block XORed with K2 if it was shorter, else with K1,
// then CBC-MAC with a zero IV; the last block is the diversified key. It
// accepts M of 1 to 31 bytes. It is what tests check the HSM against, and
// what code holding an event debit key uses to derive a card's key 1.
func AN10922(base AESKey, m []byte) (AESKey, error) {
	if base.k == nil {
		return AESKey{}, ErrKeyLength
	}
	if len(m) < 1 || len(m) > MaxDiversificationInput {
		return AESKey{}, fmt.Errorf("%w: M is %d bytes; AN10922 takes 1 to %d", ErrDiversificationInput, len(m), MaxDiversificationInput)
	}
	block, err := aes.NewCipher(base.k[:])
	if err != nil {
		return AESKey{}, err
	}
	k1, k2 := cmac.NewWithCipher(block).Subkeys()
	var d [32]byte
	d[0] = 0x01
	copy(d[1:], m)
	sub := k1
	if 1+len(m) < 32 {
		d[1+len(m)] = 0x80
		sub = k2
	}
	subtle.XORBytes(d[16:], d[16:], sub[:])
	var x [16]byte
	block.Encrypt(x[:], d[:16])
	subtle.XORBytes(x[:], x[:], d[16:])
	block.Encrypt(x[:], x[:])
	clear(d[:])
	clear(k1[:])
	clear(k2[:])
	return aesKeyFrom(x), nil
}

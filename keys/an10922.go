package keys

import (
	"context"
	"crypto/aes"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"

	"github.com/loopcard/loopcard/keys/cmac"
	"github.com/miekg/pkcs11"
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
	if err := checkHSMInput(m); err != nil {
		return nil, fmt.Errorf("%w (the system identifier must be 6 to 21 bytes)", err)
	}
	return m, nil
}

func checkHSMInput(m []byte) error {
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

// Diversify derives the AN10922 key of base key l (an AES base key of the
// hierarchy; version 0 means the newest) for input M inside the HSM, as
// CKM_AES_CMAC over 0x01 || M. It returns the key, which a station needs to
// write to or authenticate with a card, and the label actually used.
// Errors wrap ErrDiversificationInput, ErrUnknownKey or ErrKeyNotFound.
func (h *HSM) Diversify(ctx context.Context, l Label, m []byte) (key AESKey, used Label, err error) {
	defer func() {
		h.audit("keys.diversify", err, slog.String("key", used.String()), slog.String("kcv", key.KCV()))
	}()
	used = l
	if err := checkHSMInput(m); err != nil {
		return AESKey{}, used, err
	}
	d := make([]byte, 1+len(m))
	d[0] = 0x01
	copy(d[1:], m)
	return h.cmacKey(ctx, l, d)
}

// cmacKey returns CMAC(base key l, msg) computed in the HSM, as a key, and
// the label of the version used.
func (h *HSM) cmacKey(ctx context.Context, l Label, msg []byte) (key AESKey, used Label, err error) {
	used = l
	err = h.withKey(ctx, func(sh pkcs11.SessionHandle) error {
		var oh pkcs11.ObjectHandle
		var err error
		used, oh, err = h.secretKey(sh, l, KindAESBase)
		if err != nil {
			return err
		}
		mac, err := h.sign(sh, pkcs11.CKM_AES_CMAC, oh, msg)
		if err != nil {
			return err
		}
		defer clear(mac)
		if len(mac) != 16 {
			return fmt.Errorf("keys: the HSM returned a %d-byte CMAC", len(mac))
		}
		key, err = NewAESKey(mac)
		return err
	})
	return key, used, err
}

// EventDebitKey derives the debit key of one event inside the HSM:
// CMAC(app-debit base l, "event" || eventID). Cards issued for the event
// carry AN10922(event debit key, M) as key 1, and a terminal receives the
// event debit key wrapped, so it is returned to the caller. SoftHSM2 has no
// CMAC key derivation (C_DeriveKey), hence the C_Sign.
func (h *HSM) EventDebitKey(ctx context.Context, l Label, eventID []byte) (key AESKey, used Label, err error) {
	defer func() {
		h.audit("keys.event-debit-key", err, slog.String("key", used.String()), slog.String("kcv", key.KCV()))
	}()
	used = l
	if l.Name != AppDebit {
		return AESKey{}, used, fmt.Errorf("keys: event debit keys derive from %s, not %s", AppDebit, l.Name)
	}
	if len(eventID) == 0 {
		return AESKey{}, used, errors.New("keys: empty event id")
	}
	return h.cmacKey(ctx, l, append([]byte("event"), eventID...))
}

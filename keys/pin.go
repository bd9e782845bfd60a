package keys

import (
	"context"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"github.com/miekg/pkcs11"
)

// PINLength is the number of decimal digits of a cardholder PIN.
const PINLength = 6

// Errors of cardholder PINs.
var (
	// ErrBadPIN: a PIN that is not 6 decimal digits.
	ErrBadPIN = errors.New("a PIN is 6 digits")
	// ErrPINMismatch: the PIN does not match the card's verification value.
	ErrPINMismatch = errors.New("PIN does not match")
)

// PIN is a cardholder's 6-digit PIN. It has no String method and formats
// as an address; Reveal gives the digits for the one place they may go, the
// print file of card labels.
type PIN struct {
	_ [0]func()
	d *[PINLength]byte
}

// ParsePIN checks that s is 6 decimal digits. Errors wrap ErrBadPIN and
// never quote s.
func ParsePIN(s string) (PIN, error) {
	if len(s) != PINLength {
		return PIN{}, fmt.Errorf("%w: got %d characters", ErrBadPIN, len(s))
	}
	d := new([PINLength]byte)
	for i := 0; i < PINLength; i++ {
		if s[i] < '0' || s[i] > '9' {
			clear(d[:])
			return PIN{}, fmt.Errorf("%w: character %d is not a digit", ErrBadPIN, i+1)
		}
		d[i] = s[i]
	}
	return PIN{d: d}, nil
}

// Reveal returns the digits, for the print file of card labels only.
func (p PIN) Reveal() string {
	if p.d == nil {
		return ""
	}
	return string(p.d[:])
}

// Destroy overwrites the digits.
func (p PIN) Destroy() {
	if p.d != nil {
		clear(p.d[:])
	}
}

// NewPIN draws a uniformly random 6-digit PIN from the HSM's random number
// generator.
func (h *HSM) NewPIN(ctx context.Context) (PIN, error) {
	d := new([PINLength]byte)
	err := h.withSession(ctx, func(sh pkcs11.SessionHandle) error {
		for i := 0; i < PINLength; {
			r, err := h.p.GenerateRandom(sh, 16)
			if err != nil {
				return fmt.Errorf("keys: HSM random: %w", err)
			}
			for _, b := range r {
				if b < 250 && i < PINLength { // 250 = 25*10: no modulo bias
					d[i] = '0' + b%10
					i++
				}
			}
			clear(r)
		}
		return nil
	})
	if err != nil {
		return PIN{}, err
	}
	return PIN{d: d}, nil
}

// PVV is a PIN verification value: HMAC-SHA256 under pin/vN of the card id
// and the PIN. It reveals no PIN to whoever reads the database, because the
// HMAC key never leaves the HSM; 10^6 PINs cannot be tried offline.
type PVV struct {
	KeyVersion int    `json:"key_version"`
	MAC        []byte `json:"mac"`
}

// pvvMessage is "loopcard-pvv-1" || len(cardID) (2 bytes) || cardID || PIN.
func pvvMessage(cardID []byte, p PIN) []byte {
	msg := make([]byte, 0, 16+2+len(cardID)+PINLength)
	msg = append(msg, "loopcard-pvv-1"...)
	msg = binary.BigEndian.AppendUint16(msg, uint16(len(cardID)))
	msg = append(msg, cardID...)
	return append(msg, p.d[:]...)
}

func (h *HSM) pvv(ctx context.Context, l Label, cardID []byte, p PIN) (PVV, error) {
	if p.d == nil {
		return PVV{}, ErrBadPIN
	}
	if len(cardID) == 0 || len(cardID) > 0xffff {
		return PVV{}, errors.New("keys: a PIN verification value needs a card id of 1 to 65535 bytes")
	}
	msg := pvvMessage(cardID, p)
	defer clear(msg)
	var out PVV
	err := h.withKey(ctx, func(sh pkcs11.SessionHandle) error {
		used, oh, err := h.secretKey(sh, l, KindHMAC)
		if err != nil {
			return err
		}
		mac, err := h.sign(sh, pkcs11.CKM_SHA256_HMAC, oh, msg)
		if err != nil {
			return err
		}
		out = PVV{KeyVersion: used.Version, MAC: mac}
		return nil
	})
	return out, err
}

// PINVerificationValue computes the PVV of pin for the card cardID with the
// newest pin key.
func (h *HSM) PINVerificationValue(ctx context.Context, cardID []byte, p PIN) (PVV, error) {
	return h.pvv(ctx, Label{Name: PINKey}, cardID, p)
}

// VerifyPIN recomputes the PVV of pin in the HSM with the key version that
// made want and compares in constant time. It returns nil on a match and
// ErrPINMismatch otherwise; every attempt is audited without the PIN.
func (h *HSM) VerifyPIN(ctx context.Context, cardID []byte, p PIN, want PVV) (err error) {
	defer func() { h.audit("keys.verify-pin", err, slog.Int("key_version", want.KeyVersion)) }()
	if want.KeyVersion < 1 {
		return fmt.Errorf("keys: PIN verification value without a key version")
	}
	got, err := h.pvv(ctx, Label{Name: PINKey, Version: want.KeyVersion}, cardID, p)
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(got.MAC, want.MAC) != 1 {
		return ErrPINMismatch
	}
	return nil
}

// EmailMAC computes HMAC-SHA256 of msg (a normalised email with its
// context, chosen by the caller) with the newest email-mac key in the HSM,
// and returns it with the key version used. A stolen database then reveals
// no email, not even one guessed and hashed. Callers that store the MAC
// keep the version, to MAC again from the email after a rotation.
func (h *HSM) EmailMAC(ctx context.Context, msg []byte) (version int, mac []byte, err error) {
	err = h.withKey(ctx, func(sh pkcs11.SessionHandle) error {
		used, oh, err := h.secretKey(sh, Label{Name: EmailMAC}, KindHMAC)
		if err != nil {
			return err
		}
		if mac, err = h.sign(sh, pkcs11.CKM_SHA256_HMAC, oh, msg); err != nil {
			return err
		}
		version = used.Version
		return nil
	})
	return version, mac, err
}

package keys

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/miekg/pkcs11"

	"github.com/loopcard/loopcard/keys/keyderiv"
)

// Diversify derives the AN10922 key of base key l (an AES base key of the
// hierarchy; version 0 means the newest) for input M inside the HSM, as
// CKM_AES_CMAC over 0x01 || M. It returns the key, which a station needs to
// write to or authenticate with a card, and the label actually used.
// Errors wrap ErrDiversificationInput, ErrUnknownKey or ErrKeyNotFound.
func (h *HSM) Diversify(ctx context.Context, l Label, m []byte) (key keyderiv.AESKey, used Label, err error) {
	defer func() {
		h.audit("keys.diversify", err, slog.String("key", used.String()), slog.String("kcv", key.KCV()))
	}()
	used = l
	if err := keyderiv.CheckHSMInput(m); err != nil {
		return keyderiv.AESKey{}, used, err
	}
	d := make([]byte, 1+len(m))
	d[0] = 0x01
	copy(d[1:], m)
	return h.cmacKey(ctx, l, d)
}

// cmacKey returns CMAC(base key l, msg) computed in the HSM, as a key, and
// the label of the version used.
func (h *HSM) cmacKey(ctx context.Context, l Label, msg []byte) (key keyderiv.AESKey, used Label, err error) {
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
		key, err = keyderiv.NewAESKey(mac)
		return err
	})
	return key, used, err
}

// EventDebitKey derives the debit key of event of organizer org inside the
// HSM: CMAC(app-debit base l, keyderiv.EventDebitInput(org, event)), which
// binds the organizer, so two organizers' events of one id get different
// keys. Cards issued for the event carry AN10922(event debit key, M) as
// key 1, and a terminal receives the event debit key wrapped, so it is
// returned to the caller. SoftHSM2 has no CMAC key derivation
// (C_DeriveKey), hence the C_Sign.
// Errors wrap keyderiv.ErrEventDebitInput, ErrUnknownKey or ErrKeyNotFound.
func (h *HSM) EventDebitKey(ctx context.Context, l Label, org int64, event string) (key keyderiv.AESKey, used Label, err error) {
	defer func() {
		h.audit("keys.event-debit-key", err, slog.String("key", used.String()), slog.Int64("organizer", org), slog.String("kcv", key.KCV()))
	}()
	used = l
	if l.Name != AppDebit {
		return keyderiv.AESKey{}, used, fmt.Errorf("keys: event debit keys derive from %s, not %s", AppDebit, l.Name)
	}
	msg, err := keyderiv.EventDebitInput(org, event)
	if err != nil {
		return keyderiv.AESKey{}, used, err
	}
	return h.cmacKey(ctx, l, msg)
}

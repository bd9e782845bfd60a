package keys

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/miekg/pkcs11"
)

// ErrMechanismMissing is returned, before anything is created, when the
// token lacks a mechanism (or a mechanism's usage) that the keys to create
// need. Its text names every missing one.
var ErrMechanismMissing = errors.New("the token lacks mechanisms the key hierarchy needs")

// need is one mechanism a key needs, with the usage flags (CKF_*) the
// token must report for it.
type need struct {
	mech  uint
	name  string
	flags uint
}

// Mechanisms of the hierarchy, by what they do.
var (
	needAESKeyGen     = need{pkcs11.CKM_AES_KEY_GEN, "CKM_AES_KEY_GEN", pkcs11.CKF_GENERATE}
	needAESCMAC       = need{pkcs11.CKM_AES_CMAC, "CKM_AES_CMAC", pkcs11.CKF_SIGN}
	needGenericKeyGen = need{pkcs11.CKM_GENERIC_SECRET_KEY_GEN, "CKM_GENERIC_SECRET_KEY_GEN", pkcs11.CKF_GENERATE}
	needHMAC          = need{pkcs11.CKM_SHA256_HMAC, "CKM_SHA256_HMAC", pkcs11.CKF_SIGN}
	needAESKeyWrap    = need{pkcs11.CKM_AES_KEY_WRAP, "CKM_AES_KEY_WRAP", pkcs11.CKF_WRAP | pkcs11.CKF_UNWRAP}
	needEdKeyGen      = need{ckmECEdwardsKeyPairGen, "CKM_EC_EDWARDS_KEY_PAIR_GEN", pkcs11.CKF_GENERATE_KEY_PAIR}
	needEdDSA         = need{ckmEdDSA, "CKM_EDDSA", pkcs11.CKF_SIGN}
	needECKeyGen      = need{pkcs11.CKM_EC_KEY_PAIR_GEN, "CKM_EC_KEY_PAIR_GEN", pkcs11.CKF_GENERATE_KEY_PAIR}
	needECDSA         = need{pkcs11.CKM_ECDSA, "CKM_ECDSA", pkcs11.CKF_SIGN}
)

// needs lists the mechanisms a key of spec needs: to be generated (when
// generate) and to be used. A signing key needs Ed25519 or, on a token
// without it or with Options.ECDSA, ECDSA P-256; alternatives gives the
// other choice, for the error text.
func (h *HSM) needs(spec Spec, generate bool) (all []need, alternative []need) {
	gen := func(n need) {
		if generate {
			all = append(all, n)
		}
	}
	switch spec.Kind {
	case KindAESBase:
		gen(needAESKeyGen)
		all = append(all, needAESCMAC)
	case KindHMAC:
		gen(needGenericKeyGen)
		all = append(all, needHMAC)
	case KindKEK:
		gen(needAESKeyGen)
		all = append(all, needAESKeyWrap)
	case KindSigning:
		ed, ec := []need{needEdKeyGen, needEdDSA}, []need{needECKeyGen, needECDSA}
		if h.ecdsa && h.eddsa { // Options.ECDSA
			return ec, nil
		}
		return ed, ec
	}
	return all, nil
}

// preflight checks, with C_GetMechanismList and C_GetMechanismInfo, that
// the token has every mechanism the keys of specs need, and returns an
// error wrapping ErrMechanismMissing that names each one missing. It
// creates nothing.
func (h *HSM) preflight(generate bool, specs ...Spec) error {
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return ErrClosed
	}
	list, err := h.p.GetMechanismList(h.slot)
	if err != nil {
		return fmt.Errorf("keys: list the token's mechanisms: %w", err)
	}
	have := map[uint]bool{}
	for _, m := range list {
		have[m.Mechanism] = true
	}
	lacks := func(n need) string {
		if !have[n.mech] {
			return n.name
		}
		info, err := h.p.GetMechanismInfo(h.slot, []*pkcs11.Mechanism{pkcs11.NewMechanism(n.mech, nil)})
		if err != nil {
			return n.name + " (no mechanism info)"
		}
		if info.Flags&n.flags != n.flags {
			return n.name + " for " + flagNames(n.flags&^info.Flags)
		}
		return ""
	}
	var missing []string // in order of first need
	users := map[string][]string{}
	add := func(m string, spec Spec) {
		if len(users[m]) == 0 {
			missing = append(missing, m)
		}
		users[m] = append(users[m], spec.Name)
	}
	for _, spec := range specs {
		ns, alt := h.needs(spec, generate)
		var lack []string
		for _, n := range ns {
			if m := lacks(n); m != "" {
				lack = append(lack, m)
			}
		}
		if len(lack) > 0 && alt != nil {
			var altLack []string
			for _, n := range alt {
				if m := lacks(n); m != "" {
					altLack = append(altLack, m)
				}
			}
			if len(altLack) == 0 {
				continue // ECDSA P-256 will do
			}
			lack = []string{strings.Join(lack, " and ") + " (Ed25519), or else " + strings.Join(altLack, " and ") + " (ECDSA P-256),"}
		}
		for _, m := range lack {
			add(m, spec)
		}
	}
	if len(missing) > 0 {
		for i, m := range missing {
			missing[i] = m + " for " + strings.Join(users[m], ", ")
		}
		return fmt.Errorf("%w: %s; nothing was created: use a token that has them (pkcs11-tool --module MODULE --list-mechanisms shows a token's mechanisms)",
			ErrMechanismMissing, strings.Join(missing, "; "))
	}
	return nil
}

func flagNames(f uint) string {
	var out []string
	for _, n := range []struct {
		f    uint
		name string
	}{{pkcs11.CKF_GENERATE, "generate"}, {pkcs11.CKF_GENERATE_KEY_PAIR, "generate key pair"},
		{pkcs11.CKF_SIGN, "sign"}, {pkcs11.CKF_WRAP, "wrap"}, {pkcs11.CKF_UNWRAP, "unwrap"}} {
		if f&n.f != 0 {
			out = append(out, n.name)
		}
	}
	return strings.Join(out, ", ")
}

// Preflight checks that the token has every mechanism the whole hierarchy
// needs, to be generated and used, without creating anything. Init runs it
// first; it is exported for operators' checks (`loopcard keys init` names
// what is missing). Errors wrap ErrMechanismMissing.
func (h *HSM) Preflight(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return h.preflight(true, hierarchy...)
}

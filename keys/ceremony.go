package keys

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/loopcard/loopcard/keys/keyderiv"
)

// ErrBadComponent is returned for a key component that is not hex, has the
// wrong length, or for a set of components that cannot make a key.
var ErrBadComponent = errors.New("bad key component")

// Component is one XOR share of a key entered at a key ceremony. Its bytes
// stay in memory only, behind a pointer; it has no String method.
type Component struct {
	_ [0]func()
	b *[]byte
}

// ParseComponent decodes a component written in hex; spaces, tabs and line
// breaks are ignored, both cases are accepted. Errors wrap ErrBadComponent
// and never quote the input.
func ParseComponent(text []byte) (Component, error) {
	digits := make([]byte, 0, len(text))
	defer clear(digits)
	for i, c := range text {
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
			digits = append(digits, c)
		default:
			return Component{}, fmt.Errorf("%w: not hex: character %d is not one of 0-9 A-F", ErrBadComponent, i+1)
		}
	}
	if len(digits) == 0 {
		return Component{}, fmt.Errorf("%w: empty: write the component as hex digits", ErrBadComponent)
	}
	if len(digits)%2 != 0 {
		return Component{}, fmt.Errorf("%w: odd number of hex digits (%d)", ErrBadComponent, len(digits))
	}
	b := make([]byte, len(digits)/2)
	for i := range b {
		b[i] = unhexDigit(digits[2*i])<<4 | unhexDigit(digits[2*i+1])
	}
	return Component{b: &b}, nil
}

func unhexDigit(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// Len is the component's length in bytes.
func (c Component) Len() int {
	if c.b == nil {
		return 0
	}
	return len(*c.b)
}

// Destroy overwrites the component with zeros.
func (c Component) Destroy() {
	if c.b != nil {
		clear(*c.b)
	}
}

// KCV returns the key check value of value as the key spec would have it:
// AES-CMAC(value, 0^16) for AES keys, HMAC-SHA256(value, 0^16) for HMAC keys,
// first 3 bytes in upper-case hex.
func (s Spec) KCV(c Component) string {
	if c.b == nil {
		return ""
	}
	return kcvOf(s.Kind, *c.b)
}

func kcvOf(kind Kind, value []byte) string {
	if kind == KindHMAC {
		m := hmac.New(sha256.New, value)
		m.Write(make([]byte, 16))
		return keyderiv.FormatKCV(m.Sum(nil))
	}
	return keyderiv.KCV(value)
}

// ImportResult is what a key ceremony shows: the new label, the KCV of each
// component in order, and the KCV of the key.
type ImportResult struct {
	Label         Label
	ComponentKCVs []string
	KCV           string
}

// Import combines two or more XOR components into a key of the hierarchy
// called name and stores it in the HSM as its next version, non-extractable
// and sensitive, with the same usages as a generated key. The combined key
// exists only in memory, is cleared after use, and its KCV is checked in
// the HSM where the key's usages allow. Nothing is written to the token
// unless every component is valid.
// Errors wrap ErrUnknownKey, ErrBadComponent or ErrMechanismMissing.
func (h *HSM) Import(ctx context.Context, name string, components []Component) (res ImportResult, err error) {
	return h.importKey(ctx, name, components, false)
}

// ImportFirst is Import for a key the token does not hold yet: it fails
// with ErrKeyExists, and writes nothing, when a version of name exists
// (Import adds the next version: a rotation by ceremony).
func (h *HSM) ImportFirst(ctx context.Context, name string, components []Component) (res ImportResult, err error) {
	return h.importKey(ctx, name, components, true)
}

func (h *HSM) importKey(ctx context.Context, name string, components []Component, first bool) (res ImportResult, err error) {
	defer func() {
		h.audit("keys.import", err, slog.String("key", name), slog.String("label", res.Label.String()),
			slog.Int("components", len(components)), slog.Any("component_kcvs", res.ComponentKCVs), slog.String("kcv", res.KCV))
	}()
	spec, err := LookupSpec(name)
	if err != nil {
		return ImportResult{}, err
	}
	if !spec.Importable() {
		return ImportResult{}, fmt.Errorf("%w: %s is a key pair and cannot be imported: generate it with \"loopcard keys init\"", ErrBadComponent, name)
	}
	if err := h.preflight(false, spec); err != nil {
		return ImportResult{}, err
	}
	if len(components) < 2 {
		return ImportResult{}, fmt.Errorf("%w: a key is imported from 2 or more components, got %d", ErrBadComponent, len(components))
	}
	value := make([]byte, spec.Size())
	defer clear(value)
	var kcvs []string
	for i, c := range components {
		if c.Len() != spec.Size() {
			return ImportResult{}, fmt.Errorf("%w: component %d is %d bytes; %s needs %d bytes (%d hex digits)",
				ErrBadComponent, i+1, c.Len(), name, spec.Size(), 2*spec.Size())
		}
		for j := 0; j < i; j++ {
			if subtle.ConstantTimeCompare(*c.b, *components[j].b) == 1 {
				return ImportResult{}, fmt.Errorf("%w: components %d and %d are equal", ErrBadComponent, j+1, i+1)
			}
		}
		subtle.XORBytes(value, value, *c.b)
		kcvs = append(kcvs, spec.KCV(c))
	}
	if subtle.ConstantTimeCompare(value, make([]byte, len(value))) == 1 {
		return ImportResult{}, fmt.Errorf("%w: the components combine to an all-zero key", ErrBadComponent)
	}
	res = ImportResult{ComponentKCVs: kcvs, KCV: kcvOf(spec.Kind, value)}

	err = h.withSession(ctx, func(sh pkcs11.SessionHandle) error {
		vs, err := h.versions(sh)
		if err != nil {
			return err
		}
		res.Label = Label{Name: name, Version: 1}
		if v := vs[name]; len(v) > 0 {
			if first {
				return fmt.Errorf("%w: %s/v%d", ErrKeyExists, name, v[len(v)-1])
			}
			res.Label.Version = v[len(v)-1] + 1
		}
		t := append(secretTemplate(spec, res.Label, time.Now().UTC()), pkcs11.NewAttribute(pkcs11.CKA_VALUE, value))
		oh, err := h.p.CreateObject(sh, t)
		clear(t[len(t)-1].Value)
		if err != nil {
			return fmt.Errorf("keys: store %s: %w", res.Label, err)
		}
		if err := h.ensureUnique(sh, res.Label.String(), pkcs11.CKO_SECRET_KEY, oh); err != nil {
			return err
		}
		var mech uint
		switch spec.Kind {
		case KindAESBase:
			mech = pkcs11.CKM_AES_CMAC
		case KindHMAC:
			mech = pkcs11.CKM_SHA256_HMAC
		default:
			return nil // wrap-only: no usage to check a KCV with
		}
		mac, err := h.sign(sh, mech, oh, make([]byte, 16))
		if err == nil && keyderiv.FormatKCV(mac) != res.KCV {
			err = errors.New("the HSM computes another KCV")
		}
		if err != nil {
			_ = h.p.DestroyObject(sh, oh)
			return fmt.Errorf("keys: check %s after import: %w", res.Label, err)
		}
		return nil
	})
	h.forget()
	if err != nil {
		return ImportResult{ComponentKCVs: kcvs}, err
	}
	return res, nil
}

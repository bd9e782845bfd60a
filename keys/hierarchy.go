package keys

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Kind is the type of a key of the hierarchy.
type Kind int

// The kinds of keys in the hierarchy.
const (
	KindAESBase Kind = iota + 1 // AES-128 AN10922 base key, CMAC sign only
	KindHMAC                    // HMAC-SHA256 key, sign and verify only
	KindSigning                 // Ed25519 (or ECDSA P-256) key pair
	KindKEK                     // AES-256 key-encryption key, wrap and unwrap only
)

// String names the kind as `keys list` shows it.
func (k Kind) String() string {
	switch k {
	case KindAESBase:
		return "AES-128"
	case KindHMAC:
		return "HMAC-SHA256"
	case KindSigning:
		return "Ed25519"
	case KindKEK:
		return "AES-256"
	}
	return "unknown"
}

// Spec describes one key of the hierarchy.
type Spec struct {
	Name string // label without version, such as "app-debit"
	Kind Kind
	Use  string // what the key is for, for people
}

// Size is the length in bytes of a secret key of this spec (0 for key pairs).
func (s Spec) Size() int {
	switch s.Kind {
	case KindAESBase:
		return 16
	case KindHMAC, KindKEK:
		return 32
	}
	return 0
}

// Importable reports whether the key can be imported from components.
func (s Spec) Importable() bool { return s.Kind != KindSigning }

// The names of the keys of the hierarchy (docs/design.md, Keys).
const (
	PICCMaster = "picc-master"
	AppMaster  = "app-master"
	AppDebit   = "app-debit"
	AppCredit  = "app-credit"
	AppRead    = "app-read"
	PINKey     = "pin"
	HQSign     = "hq-sign"
	DataKEK    = "data-kek"
	EmailMAC   = "email-mac"
)

var hierarchy = []Spec{
	{PICCMaster, KindAESBase, "base of each card's PICC master key"},
	{AppMaster, KindAESBase, "base of application key 0"},
	{AppDebit, KindAESBase, "base of key 1 (debit) and of event debit keys"},
	{AppCredit, KindAESBase, "base of key 2 (credit)"},
	{AppRead, KindAESBase, "base of key 3 (read)"},
	{PINKey, KindHMAC, "PIN verification values"},
	{HQSign, KindSigning, "signs log checkpoints and HQ handover statements"},
	{DataKEK, KindKEK, "wraps data keys of personal data and backups"},
	{EmailMAC, KindHMAC, "MACs that find a cardholder profile by its email"},
}

// Hierarchy returns the keys of the hierarchy in a fixed order.
func Hierarchy() []Spec { return append([]Spec(nil), hierarchy...) }

// ErrUnknownKey is returned for a name that is not a key of the hierarchy.
var ErrUnknownKey = errors.New("unknown key")

// LookupSpec returns the spec of the key called name, or an error wrapping
// ErrUnknownKey that lists the valid names.
func LookupSpec(name string) (Spec, error) {
	for _, s := range hierarchy {
		if s.Name == name {
			return s, nil
		}
	}
	return Spec{}, fmt.Errorf("%w %q: valid keys are %s", ErrUnknownKey, name, strings.Join(names(), ", "))
}

func names() []string {
	var n []string
	for _, s := range hierarchy {
		n = append(n, s.Name)
	}
	return n
}

// Label names one version of a key, written "NAME/vN" in the HSM. Version 0
// means the newest version present.
type Label struct {
	Name    string
	Version int
}

// String returns "NAME/vN", or NAME for the newest version.
func (l Label) String() string {
	if l.Version == 0 {
		return l.Name
	}
	return l.Name + "/v" + strconv.Itoa(l.Version)
}

// ParseLabel parses "NAME" (newest version) or "NAME/vN" of a key of the
// hierarchy. Errors wrap ErrUnknownKey.
func ParseLabel(s string) (Label, error) {
	name, v, hasVersion := strings.Cut(s, "/")
	if _, err := LookupSpec(name); err != nil {
		return Label{}, err
	}
	if !hasVersion {
		return Label{Name: name}, nil
	}
	digits, ok := strings.CutPrefix(v, "v")
	n, err := strconv.Atoi(digits)
	if !ok || err != nil || n < 1 || strconv.Itoa(n) != digits {
		return Label{}, fmt.Errorf("%w %q: a version is written NAME/vN with N >= 1, such as %s/v1", ErrUnknownKey, s, name)
	}
	return Label{Name: name, Version: n}, nil
}

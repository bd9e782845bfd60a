package keys

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/loopcard/loopcard/keys/keyderiv"
)

// PKCS#11 3.0 constants for Ed25519 that miekg/pkcs11 v1.1.2 lacks.
const (
	ckmECEdwardsKeyPairGen = 0x1055
	ckmEdDSA               = 0x1057
	ckkECEdwards           = 0x40
)

// ed25519Params is CKA_EC_PARAMS for Ed25519: the DER OID 1.3.101.112.
var ed25519Params = []byte{0x06, 0x03, 0x2b, 0x65, 0x70}

// Errors about keys of the hierarchy.
var (
	// ErrKeyNotFound: the key (or that version of it) is not in the HSM.
	ErrKeyNotFound = errors.New("key not found in the HSM")
	// ErrKeyExists: the label to create is already taken.
	ErrKeyExists = errors.New("key already exists")
)

// KeyInfo describes one key version in the HSM, as `keys list` shows it.
// It holds no secret.
type KeyInfo struct {
	Label       string    `json:"label"`
	Name        string    `json:"name"`
	Version     int       `json:"version"`
	Type        string    `json:"type"`
	KCV         string    `json:"kcv"`
	Created     time.Time `json:"created"`
	Usages      []string  `json:"usages"`
	Sensitive   bool      `json:"sensitive"`
	Extractable bool      `json:"extractable"`
	// Modifiable and Copyable are CKA_MODIFIABLE and CKA_COPYABLE: false
	// for every key created since issue 17; true marks an older key.
	Modifiable bool `json:"modifiable"`
	Copyable   bool `json:"copyable"`
	// KCVError says why the KCV of a key that should have one could not be
	// computed (KCV is then empty); List marks it rather than failing.
	KCVError string `json:"kcv_error,omitempty"`
}

// parseObjectLabel splits "NAME/vN" of a hierarchy key.
func parseObjectLabel(s string) (Label, bool) {
	l, err := ParseLabel(s)
	if err != nil || l.Version == 0 {
		return Label{}, false
	}
	return l, true
}

// findObjects returns the handles of the objects matching template.
func (h *HSM) findObjects(sh pkcs11.SessionHandle, template []*pkcs11.Attribute) ([]pkcs11.ObjectHandle, error) {
	if err := h.p.FindObjectsInit(sh, template); err != nil {
		return nil, fmt.Errorf("keys: find objects: %w", err)
	}
	var all []pkcs11.ObjectHandle
	for {
		hs, _, err := h.p.FindObjects(sh, 64)
		if err != nil {
			_ = h.p.FindObjectsFinal(sh)
			return nil, fmt.Errorf("keys: find objects: %w", err)
		}
		if len(hs) == 0 {
			break
		}
		all = append(all, hs...)
	}
	if err := h.p.FindObjectsFinal(sh); err != nil {
		return nil, fmt.Errorf("keys: find objects: %w", err)
	}
	return all, nil
}

// versions returns, for each key name, the versions present in the HSM in
// increasing order.
func (h *HSM) versions(sh pkcs11.SessionHandle) (map[string][]int, error) {
	objs, err := h.findObjects(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true)})
	if err != nil {
		return nil, err
	}
	out := map[string][]int{}
	for _, o := range objs {
		attrs, err := h.p.GetAttributeValue(sh, o, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil),
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, nil),
		})
		if err != nil {
			return nil, fmt.Errorf("keys: read label: %w", err)
		}
		class := bytesToUint(attrs[1].Value)
		if class == pkcs11.CKO_PUBLIC_KEY {
			continue // its private half is counted
		}
		l, ok := parseObjectLabel(string(attrs[0].Value))
		if !ok {
			continue
		}
		if !slices.Contains(out[l.Name], l.Version) {
			out[l.Name] = append(out[l.Name], l.Version)
		}
	}
	for _, v := range out {
		slices.Sort(v)
	}
	return out, nil
}

// resolve turns a label with version 0 into the newest version present.
// It returns an error wrapping ErrKeyNotFound when there is none.
//
// Finding the newest version lists every object of the token, which costs
// far more than the operation that follows, so the answer is cached per
// process for the HSM's resolve TTL (Options.ResolveTTL): one listing
// refreshes the newest version of every key name. Rotate, Import and Init in
// this process drop the cache, and so do CKR_OBJECT_HANDLE_INVALID and a
// cached version whose object has gone (see withKey); a version created by
// another process is used here at most one TTL after it appeared.
func (h *HSM) resolve(sh pkcs11.SessionHandle, l Label) (Label, error) {
	if l.Version != 0 {
		return l, nil
	}
	now := time.Now()
	h.mu.Lock()
	if h.ttl > 0 && now.Sub(h.newestAt) < h.ttl {
		if v, ok := h.newest[l.Name]; ok {
			h.mu.Unlock()
			return Label{Name: l.Name, Version: v}, nil
		}
	}
	gen := h.gen
	h.mu.Unlock()
	vs, err := h.versions(sh)
	if err != nil {
		return Label{}, err
	}
	newest := make(map[string]int, len(vs))
	for name, v := range vs {
		newest[name] = v[len(v)-1]
	}
	h.mu.Lock()
	if h.gen == gen { // not invalidated while we listed
		h.newest, h.newestAt = newest, now
	}
	h.mu.Unlock()
	v, ok := newest[l.Name]
	if !ok {
		return Label{}, fmt.Errorf("%w: %s: run \"loopcard keys init\" or import it", ErrKeyNotFound, l.Name)
	}
	return Label{Name: l.Name, Version: v}, nil
}

// forget drops the cached handles and newest versions, after this process
// changed the token or a handle turned out stale.
func (h *HSM) forget() {
	h.mu.Lock()
	h.handles = map[string]pkcs11.ObjectHandle{}
	h.newest = nil
	h.gen++
	h.mu.Unlock()
}

// object finds the one object of class with label l (a full "NAME/vN").
func (h *HSM) object(sh pkcs11.SessionHandle, l Label, class uint) (pkcs11.ObjectHandle, error) {
	return h.objectByLabel(sh, l.String(), class)
}

// objectByLabel finds the one token object of class with CKA_LABEL label.
// Handles are cached for the life of the HSM (or until forget).
func (h *HSM) objectByLabel(sh pkcs11.SessionHandle, label string, class uint) (pkcs11.ObjectHandle, error) {
	key := strconv.Itoa(int(class)) + ":" + label
	h.mu.Lock()
	oh, ok := h.handles[key]
	h.mu.Unlock()
	if ok {
		return oh, nil
	}
	objs, err := h.findObjects(sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, class),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
	})
	if err != nil {
		return 0, err
	}
	switch len(objs) {
	case 0:
		if _, ok := parseObjectLabel(label); !ok {
			return 0, fmt.Errorf("%w: %s", ErrKeyNotFound, label)
		}
		return 0, fmt.Errorf("%w: %s: run \"loopcard keys init\" or import it", ErrKeyNotFound, label)
	case 1:
	default:
		return 0, fmt.Errorf("keys: %d objects are labelled %s: the token is inconsistent", len(objs), label)
	}
	h.mu.Lock()
	h.handles[key] = objs[0]
	h.mu.Unlock()
	return objs[0], nil
}

// secretKey resolves l and returns the handle of that secret key, checking
// it is a key of kind.
func (h *HSM) secretKey(sh pkcs11.SessionHandle, l Label, kind Kind) (Label, pkcs11.ObjectHandle, error) {
	spec, err := LookupSpec(l.Name)
	if err != nil {
		return Label{}, 0, err
	}
	if spec.Kind != kind {
		return Label{}, 0, fmt.Errorf("keys: %s is a %s key, not %s", l.Name, spec.Kind, kind)
	}
	l, err = h.resolve(sh, l)
	if err != nil {
		return Label{}, 0, err
	}
	oh, err := h.object(sh, l, pkcs11.CKO_SECRET_KEY)
	return l, oh, err
}

// sign runs a single-part C_Sign.
func (h *HSM) sign(sh pkcs11.SessionHandle, mech uint, oh pkcs11.ObjectHandle, msg []byte) ([]byte, error) {
	if err := h.p.SignInit(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}, oh); err != nil {
		return nil, fmt.Errorf("keys: sign init: %w", err)
	}
	out, err := h.p.Sign(sh, msg)
	if err != nil {
		return nil, fmt.Errorf("keys: sign: %w", err)
	}
	return out, nil
}

// common is the template shared by every key the hierarchy keeps.
func common(l Label, now time.Time) []*pkcs11.Attribute {
	return append([]*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, l.String()),
		pkcs11.NewAttribute(pkcs11.CKA_ID, objectID(l, now)),
	}, fixed()...)
}

// fixed makes an object least-privilege for life: no attribute can be
// changed afterwards (with the user PIN, C_SetAttributeValue could
// otherwise switch on CKA_ENCRYPT or CKA_DECRYPT of a base key), and no
// copy with other attributes can be made (C_CopyObject). Every key object
// Loopcard creates carries it (issue 17, HSM objects). CKA_DESTROYABLE stays
// true: a racing ceremony removes what it made (ensureUnique).
func fixed() []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_MODIFIABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_COPYABLE, false),
	}
}

// publicKeyAttrs are the usages of a public key: verify only. Without them
// SoftHSM2 gives a public key encrypt, wrap and verify-recover.
func publicKeyAttrs() []*pkcs11.Attribute {
	return append([]*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY_RECOVER, false),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
	}, fixed()...)
}

// objectID is the CKA_ID of key l created at now: "NAME/vN created=RFC3339".
// The creation time lives here because SoftHSM2 2.6.1 stores CKA_START_DATE
// but answers CKR_GENERAL_ERROR when it is read back.
func objectID(l Label, now time.Time) []byte {
	return []byte(l.String() + " created=" + now.UTC().Format(time.RFC3339))
}

// createdFromID returns the creation time recorded by objectID.
func createdFromID(id []byte) time.Time {
	_, ts, ok := strings.Cut(string(id), " created=")
	if !ok {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, ts)
	if err != nil {
		return time.Time{}
	}
	return t
}

// secretTemplate is the template of a long-term secret key of spec: private,
// sensitive, never extractable, with only the usages the spec needs.
func secretTemplate(spec Spec, l Label, now time.Time) []*pkcs11.Attribute {
	keyType := uint(pkcs11.CKK_AES)
	sign, verify, wrap := false, false, false
	switch spec.Kind {
	case KindAESBase:
		sign = true
	case KindHMAC:
		keyType = pkcs11.CKK_GENERIC_SECRET
		sign, verify = true, true
	case KindKEK:
		wrap = true
	}
	return append(common(l, now),
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, keyType),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, sign),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, verify),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, wrap),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, wrap),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
	)
}

// privateKeyAttrs is the template of a signing private key: private,
// sensitive, never extractable, sign only, fixed (see fixed).
func privateKeyAttrs(keyType uint) []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, keyType),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN_RECOVER, false),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_MODIFIABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_COPYABLE, false),
	}
}

// generate creates key l of spec in the HSM.
func (h *HSM) generate(sh pkcs11.SessionHandle, spec Spec, l Label) error {
	now := time.Now().UTC()
	switch spec.Kind {
	case KindAESBase, KindKEK, KindHMAC:
		mech := uint(pkcs11.CKM_AES_KEY_GEN)
		if spec.Kind == KindHMAC {
			mech = pkcs11.CKM_GENERIC_SECRET_KEY_GEN
		}
		t := append(secretTemplate(spec, l, now), pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, spec.Size()))
		oh, err := h.p.GenerateKey(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}, t)
		if err != nil {
			return fmt.Errorf("keys: generate %s: %w", l, err)
		}
		return h.ensureUnique(sh, l.String(), pkcs11.CKO_SECRET_KEY, oh)
	case KindSigning:
		if h.ecdsa {
			return h.generateECDSA(l, now)
		}
		return h.generateEd25519(sh, l.String(), objectID(l, now))
	}
	return nil
}

// generateEd25519 creates an Ed25519 key pair whose halves are both
// labelled label, with CKA_ID id: the private key private, sensitive, never
// extractable and sign only, the public key verify only, both fixed. It fails with ErrKeyExists if another pair
// labelled label appeared meanwhile, leaving that one alone.
func (h *HSM) generateEd25519(sh pkcs11.SessionHandle, label string, id []byte) error {
	base := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}
	pub := append(append([]*pkcs11.Attribute(nil), base...),
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, ckkECEdwards),
		pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, ed25519Params),
	)
	pub = append(pub, publicKeyAttrs()...)
	priv := append(append([]*pkcs11.Attribute(nil), base...), privateKeyAttrs(ckkECEdwards)...)
	mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(ckmECEdwardsKeyPairGen, nil)}
	pubH, privH, err := h.p.GenerateKeyPair(sh, mech, pub, priv)
	if err != nil {
		return fmt.Errorf("keys: generate %s: %w", label, err)
	}
	return h.ensureUnique(sh, label, pkcs11.CKO_PRIVATE_KEY, privH, pubH)
}

// ensureUnique checks that the objects just created are the only ones of
// class labelled l. Two ceremonies racing on one token (in two processes)
// could both pick the same next version; the loser destroys what it created
// and fails with ErrKeyExists.
func (h *HSM) ensureUnique(sh pkcs11.SessionHandle, l string, class uint, created ...pkcs11.ObjectHandle) error {
	objs, err := h.findObjects(sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, class),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, l),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
	})
	if err == nil && len(objs) == 1 {
		return nil
	}
	for _, oh := range created {
		_ = h.p.DestroyObject(sh, oh)
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("%w: %s was created at the same time by someone else: retry", ErrKeyExists, l)
}

// Init creates version 1 of every key of the hierarchy that has no version
// in the HSM yet, and returns the labels it created (none when all exist).
// It first checks that the token has every mechanism the hierarchy needs
// (Preflight) and creates nothing when one is missing; should a key still
// fail to generate, the keys this call created are destroyed again, so a
// token never keeps a half-made hierarchy.
// Errors wrap ErrMechanismMissing or ErrKeyExists.
func (h *HSM) Init(ctx context.Context) (created []Label, err error) {
	defer func() { h.audit("keys.init", err, slog.Any("created", labelStrings(created))) }()
	if err := h.Preflight(ctx); err != nil {
		return nil, err
	}
	err = h.withSession(ctx, func(sh pkcs11.SessionHandle) error {
		vs, err := h.versions(sh)
		if err != nil {
			return err
		}
		for _, spec := range hierarchy {
			if len(vs[spec.Name]) > 0 {
				continue
			}
			l := Label{Name: spec.Name, Version: 1}
			if err := h.generate(sh, spec, l); err != nil {
				if derr := h.destroyLabels(sh, created); derr != nil {
					return errors.Join(err, derr)
				}
				created = nil
				return err
			}
			created = append(created, l)
		}
		return nil
	})
	h.forget()
	return created, err
}

// destroyLabels destroys every token object labelled with one of ls.
func (h *HSM) destroyLabels(sh pkcs11.SessionHandle, ls []Label) error {
	for _, l := range ls {
		objs, err := h.findObjects(sh, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, l.String()),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		})
		if err != nil {
			return err
		}
		for _, oh := range objs {
			if err := h.p.DestroyObject(sh, oh); err != nil {
				return fmt.Errorf("keys: destroy %s after a failed init: %w", l, err)
			}
		}
	}
	return nil
}

// Rotate generates version N+1 of the key called name, where N is the newest
// version present (0 if none). Older versions stay in the HSM and usable.
// The token's mechanisms are checked first, and nothing is created when one
// the key needs is missing. Errors wrap ErrUnknownKey or ErrMechanismMissing.
func (h *HSM) Rotate(ctx context.Context, name string) (l Label, err error) {
	defer func() { h.audit("keys.rotate", err, slog.String("key", name), slog.String("label", l.String())) }()
	spec, err := LookupSpec(name)
	if err != nil {
		return Label{}, err
	}
	if err := h.preflight(true, spec); err != nil {
		return Label{}, err
	}
	err = h.withSession(ctx, func(sh pkcs11.SessionHandle) error {
		vs, err := h.versions(sh)
		if err != nil {
			return err
		}
		l = Label{Name: name, Version: len(vs[name]) + 1}
		if v := vs[name]; len(v) > 0 {
			l.Version = v[len(v)-1] + 1
		}
		return h.generate(sh, spec, l)
	})
	h.forget()
	if err != nil {
		return Label{}, err
	}
	return l, nil
}

// List describes every key version of the hierarchy in the HSM, ordered by
// hierarchy then version. KCVs are computed in the HSM; one that cannot be
// is marked in KeyInfo.KCVError and the listing goes on.
func (h *HSM) List(ctx context.Context) ([]KeyInfo, error) {
	var out []KeyInfo
	err := h.withSession(ctx, func(sh pkcs11.SessionHandle) error {
		vs, err := h.versions(sh)
		if err != nil {
			return err
		}
		for _, spec := range hierarchy {
			for _, v := range vs[spec.Name] {
				info, err := h.describe(sh, spec, Label{Name: spec.Name, Version: v})
				if err != nil {
					return err
				}
				out = append(out, info)
			}
		}
		return nil
	})
	return out, err
}

// Describe describes key version l (a full "NAME/vN") as List does: a KCV
// that cannot be computed is marked in KCVError, not an error.
// Errors wrap ErrUnknownKey or ErrKeyNotFound.
func (h *HSM) Describe(ctx context.Context, l Label) (KeyInfo, error) {
	spec, err := LookupSpec(l.Name)
	if err != nil {
		return KeyInfo{}, err
	}
	var info KeyInfo
	err = h.withKey(ctx, func(sh pkcs11.SessionHandle) error {
		l, err := h.resolve(sh, l)
		if err != nil {
			return err
		}
		info, err = h.describe(sh, spec, l)
		return err
	})
	return info, err
}

var usageAttrs = []struct {
	attr uint
	name string
}{
	{pkcs11.CKA_SIGN, "sign"},
	{pkcs11.CKA_VERIFY, "verify"},
	{pkcs11.CKA_ENCRYPT, "encrypt"},
	{pkcs11.CKA_DECRYPT, "decrypt"},
	{pkcs11.CKA_WRAP, "wrap"},
	{pkcs11.CKA_UNWRAP, "unwrap"},
	{pkcs11.CKA_DERIVE, "derive"},
}

func (h *HSM) describe(sh pkcs11.SessionHandle, spec Spec, l Label) (KeyInfo, error) {
	class := uint(pkcs11.CKO_SECRET_KEY)
	if spec.Kind == KindSigning {
		class = pkcs11.CKO_PRIVATE_KEY
	}
	oh, err := h.object(sh, l, class)
	if err != nil {
		return KeyInfo{}, err
	}
	info := KeyInfo{Label: l.String(), Name: l.Name, Version: l.Version, Type: spec.Kind.String(), Usages: []string{}}
	tmpl := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_ID, nil),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil),
	}
	for _, u := range usageAttrs {
		if class == pkcs11.CKO_PRIVATE_KEY && (u.attr == pkcs11.CKA_ENCRYPT || u.attr == pkcs11.CKA_VERIFY || u.attr == pkcs11.CKA_WRAP) {
			continue // not attributes of a private key
		}
		tmpl = append(tmpl, pkcs11.NewAttribute(u.attr, nil))
	}
	attrs, err := h.p.GetAttributeValue(sh, oh, tmpl)
	if err != nil {
		return KeyInfo{}, fmt.Errorf("keys: read attributes of %s: %w", l, err)
	}
	for _, a := range attrs {
		switch a.Type {
		case pkcs11.CKA_ID:
			info.Created = createdFromID(a.Value)
		case pkcs11.CKA_SENSITIVE:
			info.Sensitive = isTrue(a.Value)
		case pkcs11.CKA_EXTRACTABLE:
			info.Extractable = isTrue(a.Value)
		default:
			for _, u := range usageAttrs {
				if u.attr == a.Type && isTrue(a.Value) {
					info.Usages = append(info.Usages, u.name)
				}
			}
		}
	}
	// CKA_MODIFIABLE and CKA_COPYABLE (PKCS#11 2.40) read apart: a module
	// without them must not make the key unlistable; both default to true.
	info.Modifiable, info.Copyable = true, true
	if fa, err := h.p.GetAttributeValue(sh, oh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_MODIFIABLE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_COPYABLE, nil),
	}); err == nil {
		info.Modifiable, info.Copyable = isTrue(fa[0].Value), isTrue(fa[1].Value)
	}
	if err := h.kcv(sh, spec, l, oh, &info); err != nil {
		// Marked, not fatal: one key whose KCV cannot be computed (a
		// mechanism the token lacks, a key of another type under a label of
		// the hierarchy) must not hide the others, nor make a rotation that
		// worked look failed.
		info.KCV, info.KCVError = "", err.Error()
	}
	return info, nil
}

// kcv sets info.KCV of key l (object oh): computed in the HSM for secret
// keys, the SHA-256 of the public key for key pairs. A wrap-only key has
// none: it cannot compute a check value in the HSM without a usage it must
// not have; its KCV is shown at import time.
func (h *HSM) kcv(sh pkcs11.SessionHandle, spec Spec, l Label, oh pkcs11.ObjectHandle, info *KeyInfo) error {
	switch spec.Kind {
	case KindAESBase, KindHMAC:
		mech := uint(pkcs11.CKM_AES_CMAC)
		if spec.Kind == KindHMAC {
			mech = pkcs11.CKM_SHA256_HMAC
		}
		mac, err := h.sign(sh, mech, oh, make([]byte, 16))
		if err != nil {
			return fmt.Errorf("KCV of %s: %w", l, err)
		}
		info.KCV = keyderiv.FormatKCV(mac)
	case KindSigning:
		pub, alg, err := h.publicKey(sh, l.String())
		if err != nil {
			return err
		}
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return fmt.Errorf("public key of %s: %w", l, err)
		}
		sum := sha256.Sum256(der)
		info.KCV = keyderiv.FormatKCV(sum[:])
		info.Type = alg
	}
	return nil
}

func isTrue(b []byte) bool { return len(b) > 0 && b[0] != 0 }

func bytesToUint(b []byte) uint {
	var n uint
	for i := len(b) - 1; i >= 0; i-- { // PKCS#11 CK_ULONG is host-endian: little-endian here
		n = n<<8 | uint(b[i])
	}
	return n
}

func labelStrings(ls []Label) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.String()
	}
	return out
}

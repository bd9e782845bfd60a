package keys

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/miekg/pkcs11"
	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/keys/keyderiv"
	"github.com/loopcard/loopcard/softhsm"
)

func TestInitListRotate(t *testing.T) {
	h := openTest(t)
	ctx := context.Background()

	created, err := h.Init(ctx)
	require.NoError(t, err)
	require.Len(t, created, len(Hierarchy()))
	again, err := h.Init(ctx)
	require.NoError(t, err)
	require.Empty(t, again, "init creates only what is missing")

	list, err := h.List(ctx)
	require.NoError(t, err)
	require.Len(t, list, len(Hierarchy()))
	kcv := regexp.MustCompile(`^[0-9A-F]{6}$`)
	start := time.Now().UTC().Add(-time.Minute)
	want := map[string][]string{
		PICCMaster: {"sign"}, AppMaster: {"sign"}, AppDebit: {"sign"}, AppCredit: {"sign"}, AppRead: {"sign"},
		PINKey: {"sign", "verify"}, HQSign: {"sign"}, DataKEK: {"wrap", "unwrap"}, EmailMAC: {"sign", "verify"},
	}
	for i, k := range list {
		spec := Hierarchy()[i]
		require.Equal(t, spec.Name+"/v1", k.Label)
		require.Equal(t, spec.Kind.String(), k.Type)
		require.Equal(t, 1, k.Version)
		require.Equal(t, want[spec.Name], k.Usages, k.Label)
		require.True(t, k.Sensitive, k.Label)
		require.False(t, k.Extractable, k.Label)
		require.WithinDuration(t, start, k.Created, 2*time.Minute, k.Label)
		if spec.Kind == KindKEK {
			require.Empty(t, k.KCV)
		} else {
			require.Regexp(t, kcv, k.KCV, k.Label)
		}
	}

	m := []byte("0123456789abcdefXYZ")
	d1, used, err := h.Diversify(ctx, Label{Name: AppDebit}, m)
	require.NoError(t, err)
	require.Equal(t, Label{AppDebit, 1}, used)

	l, err := h.Rotate(ctx, AppDebit)
	require.NoError(t, err)
	require.Equal(t, Label{AppDebit, 2}, l)
	d2, used, err := h.Diversify(ctx, Label{Name: AppDebit}, m)
	require.NoError(t, err)
	require.Equal(t, Label{AppDebit, 2}, used, "the newest version is the default")
	require.False(t, d1.Equal(d2))
	old, _, err := h.Diversify(ctx, Label{AppDebit, 1}, m)
	require.NoError(t, err)
	require.True(t, old.Equal(d1), "old versions stay usable")

	list, err = h.List(ctx)
	require.NoError(t, err)
	require.Len(t, list, len(Hierarchy())+1)
	require.Equal(t, "app-debit/v2", list[3].Label)
	require.NotEqual(t, list[2].KCV, list[3].KCV)

	_, err = h.Rotate(ctx, "nope")
	require.ErrorIs(t, err, ErrUnknownKey)
	_, _, err = h.Diversify(ctx, Label{AppDebit, 9}, m)
	require.ErrorIs(t, err, ErrKeyNotFound)
	_, _, err = h.Diversify(ctx, Label{Name: PINKey}, m)
	require.Error(t, err)
}

// Base keys and every other long-term key cannot leave the HSM: reading
// CKA_VALUE fails and wrapping them fails, with data-kek and with a fresh
// extractable-friendly wrapping key.
func TestKeysNotExtractable(t *testing.T) {
	h := openTest(t)
	ctx := context.Background()
	_, err := h.Init(ctx)
	require.NoError(t, err)
	_, err = h.Import(ctx, AppRead, split(t, unhex(t, "00112233445566778899AABBCCDDEEFF"), 2))
	require.NoError(t, err)

	require.NoError(t, h.withSession(ctx, func(sh pkcs11.SessionHandle) error {
		kek, err := h.object(sh, Label{DataKEK, 1}, pkcs11.CKO_SECRET_KEY)
		require.NoError(t, err)
		wrapper, err := h.p.GenerateKey(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)},
			[]*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
				pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
				pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
				pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
				pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
			})
		require.NoError(t, err)
		defer h.p.DestroyObject(sh, wrapper)

		labels := []Label{{AppRead, 2}}
		for _, s := range Hierarchy() {
			labels = append(labels, Label{s.Name, 1})
		}
		for _, l := range labels {
			class := uint(pkcs11.CKO_SECRET_KEY)
			if l.Name == HQSign {
				class = pkcs11.CKO_PRIVATE_KEY
			}
			oh, err := h.object(sh, l, class)
			require.NoError(t, err, l)
			_, err = h.p.GetAttributeValue(sh, oh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
			require.ErrorIs(t, err, pkcs11.Error(pkcs11.CKR_ATTRIBUTE_SENSITIVE), l)
			for _, w := range []pkcs11.ObjectHandle{kek, wrapper} {
				mech := pkcs11.CKM_AES_KEY_WRAP_PAD
				if class == pkcs11.CKO_SECRET_KEY {
					mech = pkcs11.CKM_AES_KEY_WRAP
				}
				_, err = h.p.WrapKey(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(uint(mech), nil)}, w, oh)
				require.ErrorIs(t, err, pkcs11.Error(pkcs11.CKR_KEY_UNEXTRACTABLE), l)
			}
			attrs, err := h.p.GetAttributeValue(sh, oh, []*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_NEVER_EXTRACTABLE, nil),
				pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil),
			})
			require.NoError(t, err)
			require.False(t, isTrue(attrs[1].Value), l)
			if l.Version == 1 { // generated, not imported
				require.True(t, isTrue(attrs[0].Value), "%s was never extractable", l)
			}
		}
		// A base key only signs: encryption with it is refused.
		oh, err := h.object(sh, Label{AppMaster, 1}, pkcs11.CKO_SECRET_KEY)
		require.NoError(t, err)
		err = h.p.EncryptInit(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_ECB, nil)}, oh)
		require.ErrorIs(t, err, pkcs11.Error(pkcs11.CKR_KEY_FUNCTION_NOT_PERMITTED))
		return nil
	}))
}

func TestImportBadInputChangesNothing(t *testing.T) {
	h := openTest(t)
	ctx := context.Background()
	_, err := h.Init(ctx)
	require.NoError(t, err)
	before, err := h.List(ctx)
	require.NoError(t, err)

	good := func() []Component { return split(t, unhex(t, "00112233445566778899AABBCCDDEEFF"), 2) }
	short, err := ParseComponent([]byte("00112233445566778899AABBCCDDEE"))
	require.NoError(t, err)
	c1 := good()[0]
	for _, tc := range []struct {
		name, key string
		cs        []Component
		want      error
		msg       string
	}{
		{"unknown label", "nope", good(), ErrUnknownKey, "valid keys are picc-master"},
		{"short component", AppRead, []Component{good()[0], short}, ErrBadComponent, "component 2 is 15 bytes; app-read needs 16 bytes (32 hex digits)"},
		{"one component", AppRead, good()[:1], ErrBadComponent, "2 or more components"},
		{"equal components", AppRead, []Component{c1, c1}, ErrBadComponent, "components 1 and 2 are equal"},
		{"key pair", HQSign, good(), ErrBadComponent, "cannot be imported"},
		{"wrong size for kek", DataKEK, good(), ErrBadComponent, "needs 32 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.Import(ctx, tc.key, tc.cs)
			require.ErrorIs(t, err, tc.want)
			require.ErrorContains(t, err, tc.msg)
			require.NotContains(t, err.Error(), "\n")
		})
	}
	after, err := h.List(ctx)
	require.NoError(t, err)
	require.Equal(t, before, after)

	for _, tc := range []struct{ in, msg string }{
		{"0011zz", "character 5 is not one of 0-9 A-F"},
		{"", "empty"},
		{"abc", "odd number"},
	} {
		_, err := ParseComponent([]byte(tc.in))
		require.ErrorIs(t, err, ErrBadComponent)
		require.ErrorContains(t, err, tc.msg)
	}
	c, err := ParseComponent([]byte(" 0011 2233\n4455 6677 8899 AaBb CCDD EEFF\n"))
	require.NoError(t, err)
	require.Equal(t, 16, c.Len())
}

func TestImportKCVs(t *testing.T) {
	h := openTest(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		size int
	}{{AppCredit, 16}, {PINKey, 32}, {DataKEK, 32}} {
		key := make([]byte, tc.size)
		for i := range key {
			key[i] = byte(i*7 + 1)
		}
		cs := split(t, key, 3)
		spec, err := LookupSpec(tc.name)
		require.NoError(t, err)
		res, err := h.Import(ctx, tc.name, cs)
		require.NoError(t, err)
		require.Equal(t, Label{tc.name, 1}, res.Label)
		require.Equal(t, kcvOf(spec.Kind, key), res.KCV)
		require.Len(t, res.ComponentKCVs, 3)
		for i, c := range cs {
			require.Equal(t, spec.KCV(c), res.ComponentKCVs[i])
		}
		if tc.name == AppCredit {
			k, err := keyderiv.NewAESKey(key)
			require.NoError(t, err)
			require.Equal(t, k.KCV(), res.KCV)
		}
	}
	list, err := h.List(ctx)
	require.NoError(t, err)
	require.Len(t, list, 3)
	require.Equal(t, kcvOf(KindAESBase, func() []byte {
		k := make([]byte, 16)
		for i := range k {
			k[i] = byte(i*7 + 1)
		}
		return k
	}()), list[0].KCV, "the HSM computes the same KCV as the ceremony showed")
}

func TestOpenErrors(t *testing.T) {
	uri := softhsm.NewTestToken(t)
	u, err := ParseURI(uri)
	require.NoError(t, err)
	dir := t.TempDir()
	wrongPIN := filepath.Join(dir, "wrong")
	require.NoError(t, os.WriteFile(wrongPIN, []byte("not-the-pin\n"), 0o600))
	module := u.ModulePath

	for _, tc := range []struct {
		name, uri string
		want      error
		msg       string
	}{
		{"missing module", "pkcs11:token=" + u.Token + "?module-path=/nonexistent/libsofthsm2.so&pin-source=" + u.PINSource,
			ErrModuleNotFound, "install softhsm2 (scripts/setup) or fix module-path"},
		{"wrong PIN", "pkcs11:token=" + u.Token + "?module-path=" + module + "&pin-source=file://" + wrongPIN,
			ErrWrongPIN, "check the pin-source file"},
		{"wrong pin-value", "pkcs11:token=" + u.Token + "?module-path=" + module + "&pin-value=12345678",
			ErrWrongPIN, "check the pin-source file"},
		{"no PIN", "pkcs11:token=" + u.Token + "?module-path=" + module, ErrNoPIN, "pin-source=file://"},
		{"unreadable PIN file", "pkcs11:token=" + u.Token + "?module-path=" + module + "&pin-source=" + filepath.Join(dir, "none"),
			ErrNoPIN, "cannot read the pin-source file"},
		{"unknown token", "pkcs11:token=nosuchtoken?module-path=" + module + "&pin-source=" + u.PINSource,
			ErrTokenNotFound, "check token="},
		{"no module-path", "pkcs11:token=x?pin-source=" + u.PINSource, ErrBadURI, "add ?module-path="},
		{"not a URI", "softhsm", ErrBadURI, "must start with"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := Open(tc.uri, Options{})
			require.Nil(t, h)
			require.ErrorIs(t, err, tc.want)
			require.ErrorContains(t, err, tc.msg)
			require.NotContains(t, err.Error(), "12345678")
			require.NotContains(t, err.Error(), "not-the-pin")
		})
	}
	// After all the failures the right URI still opens (the module is
	// released correctly).
	h, err := Open(uri, Options{})
	require.NoError(t, err)
	require.NoError(t, h.Close())
	require.NoError(t, h.Close(), "Close is idempotent")
	_, err = h.List(context.Background())
	require.ErrorIs(t, err, ErrClosed)
}

func TestParseURI(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want URI
		err  string
	}{
		{in: "pkcs11:token=loopcard?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:///etc/pin",
			want: URI{Token: "loopcard", ModulePath: "/usr/lib/softhsm/libsofthsm2.so", PINSource: "file:///etc/pin"}},
		{in: "pkcs11:token=my%20token;manufacturer=SoftHSM%20project;serial=abc;object=app-debit%2Fv1;id=%01%02;slot-id=7;type=secret-key",
			want: URI{Token: "my token", Manufacturer: "SoftHSM project", Serial: "abc", Object: "app-debit/v1", ID: []byte{1, 2}, SlotID: ptr(uint(7))}},
		{in: "pkcs11:", want: URI{}},
		{in: "pkcs11:x-vendor=1;token=a", want: URI{Token: "a"}},
		{in: "pkcs11:token=a;token=b", err: "given twice"},
		{in: "pkcs11:flavour=a", err: "unknown path attribute"},
		{in: "pkcs11:token=a?pin-value=1&pin-source=/x", err: "not both"},
		{in: "pkcs11:token=%zz", err: "bad percent-encoding"},
		{in: "pkcs11:slot-id=x", err: "not a number"},
		{in: "pkcs11:token=a?module-name=softhsm2", err: "give module-path"},
		{in: "pkcs11:token=a?pin-value", err: "no name=value form"},
		{in: "http://x", err: "must start with"},
	} {
		u, err := ParseURI(tc.in)
		if tc.err != "" {
			require.ErrorIs(t, err, ErrBadURI, tc.in)
			require.ErrorContains(t, err, tc.err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, *u, tc.in)
	}

	u, err := ParseURI("pkcs11:token=a?pin-value=secret-pin%21")
	require.NoError(t, err)
	require.Equal(t, "pkcs11:token=a?pin-value=REDACTED", u.String())
	pin, err := u.readPIN()
	require.NoError(t, err)
	require.Equal(t, "secret-pin!", string(pin.bytes()))
	require.False(t, strings.Contains(u.String(), "secret"))
}

func ptr[T any](v T) *T { return &v }

func FuzzParseURI(f *testing.F) {
	f.Add("pkcs11:token=loopcard?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234")
	f.Add("pkcs11:token=a%20b;slot-id=3;id=%00")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseURI(s)
		if err != nil {
			return
		}
		// What String prints parses back to the same URI, PIN aside.
		again, err := ParseURI(u.String())
		require.NoError(t, err, u.String())
		u.pinValue, again.pinValue = nil, nil
		if len(u.ID) == 0 {
			u.ID = nil
		}
		require.Equal(t, u.String(), again.String())
	})
}

// Many goroutines share the session pool: every result is right and the
// pool never opens more than MaxSessions sessions.
func TestConcurrentDiversify(t *testing.T) {
	uri := softhsm.NewTestToken(t)
	h, err := Open(uri, Options{MaxSessions: 3})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, h.Close()) })
	ctx := context.Background()
	raw := unhex(t, "2B7E151628AED2A6ABF7158809CF4F3C")
	importKnown(t, h, AppRead, raw)
	base, err := keyderiv.NewAESKey(raw)
	require.NoError(t, err)

	const workers, each = 8, 50
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		go func() {
			for i := 0; i < each; i++ {
				m := []byte(fmt.Sprintf("uid%04daid%02d-system", i, w))
				got, _, err := h.Diversify(ctx, Label{Name: AppRead}, m)
				if err != nil {
					errs <- err
					return
				}
				want, err := keyderiv.AN10922(base, m)
				if err != nil || !got.Equal(want) {
					errs <- fmt.Errorf("worker %d input %d: wrong key (%v)", w, i, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for w := 0; w < workers; w++ {
		require.NoError(t, <-errs)
	}
	h.pool.mu.Lock()
	open := len(h.pool.all)
	h.pool.mu.Unlock()
	require.LessOrEqual(t, open, 3)
	require.GreaterOrEqual(t, open, 1)

	// A context that ends while every session is busy gives up waiting.
	var held []pkcs11.SessionHandle
	for i := 0; i < 3; i++ {
		sh, err := h.pool.get(ctx)
		require.NoError(t, err)
		held = append(held, sh)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, _, err = h.Diversify(short, Label{Name: AppRead}, []byte("0123456789abcdefgh"))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	for _, sh := range held {
		h.pool.put(sh, false)
	}
}

// A failed Open must not finalise the module under HSMs already open in the
// process (crypto11 finalises on a failed Configure; Open checks first).
func TestFailedOpenLeavesOpenHSMsWorking(t *testing.T) {
	uri := softhsm.NewTestToken(t)
	other, err := ParseURI(softhsm.NewTestToken(t)) // visible: created before any Open
	require.NoError(t, err)
	h, err := Open(uri, Options{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, h.Close()) })
	ctx := context.Background()
	_, err = h.Init(ctx)
	require.NoError(t, err)
	u, err := ParseURI(softhsm.NewTestToken(t)) // created after C_Initialize: invisible
	require.NoError(t, err)

	for _, uri := range []string{
		"pkcs11:token=" + u.Token + "?module-path=" + u.ModulePath + "&pin-source=" + u.PINSource,
		"pkcs11:token=nope?module-path=" + u.ModulePath + "&pin-value=12345678",
	} {
		_, err = Open(uri, Options{})
		require.ErrorIs(t, err, ErrTokenNotFound)
		require.ErrorContains(t, err, "SOFTHSM2_CONF")
	}
	_, err = Open("pkcs11:token="+other.Token+"?module-path="+other.ModulePath+"&pin-value=12345678", Options{})
	require.ErrorIs(t, err, ErrWrongPIN)
	list, err := h.List(ctx)
	require.NoError(t, err)
	require.Len(t, list, len(Hierarchy()))

	h3, err := Open(other.String(), Options{})
	require.NoError(t, err, "the right PIN opens the other token beside the first")
	list3, err := h3.List(ctx)
	require.NoError(t, err)
	require.Empty(t, list3)
	require.NoError(t, h3.Close())

	// A second handle on the same token shares the module and the login.
	h2, err := Open(uri, Options{})
	require.NoError(t, err)
	require.NoError(t, h2.Close())
	_, err = h.List(ctx)
	require.NoError(t, err, "closing one handle keeps the other working")
}

// A version created twice (two ceremonies racing) leaves one key: the
// second creator destroys its own and reports ErrKeyExists.
func TestDuplicateVersionIsUndone(t *testing.T) {
	h := openTest(t)
	ctx := context.Background()
	_, err := h.Init(ctx)
	require.NoError(t, err)
	before, err := h.List(ctx)
	require.NoError(t, err)
	require.NoError(t, h.withSession(ctx, func(sh pkcs11.SessionHandle) error {
		for _, name := range []string{AppRead, HQSign} {
			spec, err := LookupSpec(name)
			require.NoError(t, err)
			err = h.generate(sh, spec, Label{name, 1})
			require.ErrorIs(t, err, ErrKeyExists, name)
		}
		return nil
	}))
	after, err := h.List(ctx)
	require.NoError(t, err)
	require.Equal(t, before, after)
}

func FuzzParseComponent(f *testing.F) {
	f.Add([]byte("00112233445566778899AABBCCDDEEFF\n"))
	f.Add([]byte(" 0a1b 2c3d\t4e5f\r\n"))
	f.Add([]byte("zz"))
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := ParseComponent(in)
		if err != nil {
			require.ErrorIs(t, err, ErrBadComponent)
			return
		}
		// Parse, print as hex, parse again: the same bytes.
		again, err := ParseComponent([]byte(strings.ToUpper(fmt.Sprintf("%x", *c.b))))
		require.NoError(t, err)
		require.Equal(t, *c.b, *again.b)
	})
}

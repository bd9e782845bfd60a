package keys

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/loopcard/loopcard/softhsm"
	"github.com/stretchr/testify/require"
)

// A full ceremony and diversification run, with failures, leaves no key,
// component or PIN in any log record or error, in hex (either case) or raw.
func TestNoSecretsInLogsOrErrors(t *testing.T) {
	var logs bytes.Buffer
	noTime := func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: noTime}))
	jsonLog := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: noTime}))
	var secrets [][]byte
	var errs []string
	keep := func(err error) {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	ctx := context.Background()

	uri := softhsm.NewTestToken(t)
	u, err := ParseURI(uri)
	require.NoError(t, err)
	pu, err := url.Parse(u.PINSource)
	require.NoError(t, err)
	tokenPIN, err := os.ReadFile(pu.Path)
	require.NoError(t, err)
	secrets = append(secrets, tokenPIN)

	// Failed logins first: wrong PIN by value and by file.
	wrong := "pkcs11:token=" + u.Token + "?module-path=" + u.ModulePath + "&pin-value=" + hex.EncodeToString([]byte("pin!pin!"))
	_, err = Open(wrong, Options{Logger: log})
	require.ErrorIs(t, err, ErrWrongPIN)
	keep(err)
	secrets = append(secrets, []byte("pin!pin!"))

	h, err := Open(uri, Options{Logger: log})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, h.Close()) })

	created, err := h.Init(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, created)

	// The ceremony: three keys from components, and bad attempts.
	for _, tc := range []struct {
		name string
		key  string
	}{
		{PICCMaster, "00112233445566778899AABBCCDDEEFF"},
		{PINKey, "6b1d3c8e2f4a5b6c7d8e9fa0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0"},
		{DataKEK, "f0e1d2c3b4a5968778695a4b3c2d1e0f0f1e2d3c4b5a69788796a5b4c3d2e1f0"},
	} {
		key := unhex(t, tc.key)
		secrets = append(secrets, key)
		cs := split(t, key, 3)
		for _, c := range cs {
			secrets = append(secrets, append([]byte(nil), *c.b...))
		}
		res, err := h.Import(ctx, tc.name, cs)
		require.NoError(t, err)
		log.Info("ceremony", "result", res, "components", cs)
		jsonLog.Info("ceremony", "result", res, "component", cs[0])

		_, err = h.Import(ctx, tc.name, []Component{cs[0], cs[0]})
		keep(err)
		_, err = h.Import(ctx, "nope", cs)
		keep(err)
		short := Component{b: ptr(append([]byte(nil), (*cs[1].b)[:len(key)-1]...))}
		_, err = h.Import(ctx, tc.name, []Component{cs[0], short})
		keep(err)
		_, err = ParseComponent([]byte(strings.ToUpper(hex.EncodeToString(*cs[2].b))[:7] + "G"))
		keep(err)
	}
	require.NotEmpty(t, errs)

	// Diversification, event keys, PINs, envelopes, signatures.
	for i := 0; i < 50; i++ {
		m := []byte(fmt.Sprintf("%07d%03dLOOPCARD", i, i))
		k, _, err := h.Diversify(ctx, Label{Name: PICCMaster}, m)
		require.NoError(t, err)
		secrets = append(secrets, k.Bytes())
		log.Info("diversified", "key", k, "ptr", &k)
		jsonLog.Info("diversified", "key", k)
	}
	_, _, err = h.Diversify(ctx, Label{Name: PICCMaster}, []byte("short"))
	keep(err)
	ek, _, err := h.EventDebitKey(ctx, Label{Name: AppDebit}, 1, "event-1")
	require.NoError(t, err)
	secrets = append(secrets, ek.Bytes())
	log.Info("event", "key", ek)

	pin, err := h.NewPIN(ctx)
	require.NoError(t, err)
	fixed, err := ParsePIN("739154")
	require.NoError(t, err)
	secrets = append(secrets, []byte(pin.Reveal()), []byte("739154"))
	pvv, err := h.PINVerificationValue(ctx, []byte("card-1"), pin)
	require.NoError(t, err)
	require.NoError(t, h.VerifyPIN(ctx, []byte("card-1"), pin, pvv))
	keep(h.VerifyPIN(ctx, []byte("card-1"), fixed, pvv))
	_, err = ParsePIN("73915x")
	keep(err)
	log.Info("pin", "pin", pin, "fixed", &fixed)

	env, err := h.Seal(ctx, []byte("personal data"), nil)
	require.NoError(t, err)
	env.Ciphertext[0] ^= 1
	_, err = h.Unseal(ctx, env, nil)
	keep(err)

	s, err := h.Signer(ctx, Label{Name: HQSign})
	require.NoError(t, err)
	_, err = s.Sign(nil, []byte("statement"), nil)
	require.NoError(t, err)

	// Everything printable: errors, and the secret types through fmt and JSON.
	out := logs.String() + strings.Join(errs, "\n")
	for _, v := range []any{ek, &ek, pin, &pin, fixed, Component{b: ptr([]byte{1, 2, 3})}, u} {
		out += fmt.Sprintf("%v %+v %#v %s %x %X %q\n", v, v, v, v, v, v, v)
		j, err := json.Marshal(v)
		require.NoError(t, err)
		out += string(j)
	}
	require.Contains(t, out, "action=keys.import")
	require.Contains(t, out, "outcome=failed")
	require.GreaterOrEqual(t, strings.Count(out, "action=keys.diversify"), 51, "every diversification is audited")

	for _, s := range secrets {
		for _, form := range []string{string(s), hex.EncodeToString(s), strings.ToUpper(hex.EncodeToString(s))} {
			require.NotContains(t, out, form, "secret %d bytes found in logs or errors", len(s))
		}
	}
	t.Logf("searched %d secrets in %d bytes of logs and %d errors", len(secrets), len(out), len(errs))
}

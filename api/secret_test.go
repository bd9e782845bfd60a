package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api/apitype"
)

// TestSecretNotPrinted: a request with a password, decoded from JSON,
// shows no password when printed with fmt or logged with slog, and
// encodes back to the JSON a client sends.
func TestSecretNotPrinted(t *testing.T) {
	const pw = "correct horse battery"
	var claim apitype.ClaimRequest
	require.NoError(t, json.Unmarshal([]byte(`{"email":"a@example.org","password":"`+pw+`","consent":{"purposes":["profile"],"notice":"n"}}`), &claim))
	var login apitype.LoginRequest
	require.NoError(t, json.Unmarshal([]byte(`{"org":1,"email":"a@example.org","password":"`+pw+`"}`), &login))
	require.Equal(t, len(pw), claim.Password.Len())

	var logs bytes.Buffer
	for _, h := range []slog.Handler{slog.NewJSONHandler(&logs, nil), slog.NewTextHandler(&logs, nil)} {
		l := slog.New(h)
		l.Info("request", "claim", claim, "login", login, "password", claim.Password)
		l.Info("request", slog.Any("claim", &claim), slog.Any("password", login.Password))
	}
	require.Contains(t, logs.String(), "[redacted]")
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		for _, v := range []any{claim, &claim, login, claim.Password, &login.Password} {
			out := fmt.Sprintf(format, v)
			require.NotContains(t, out, pw, "%s of %T", format, v)
			require.NotContains(t, out, fmt.Sprintf("%x", pw), "%s of %T", format, v)
			require.NotContains(t, out, fmt.Sprint([]byte(pw)), "%s of %T", format, v)
		}
	}
	require.NotContains(t, logs.String(), pw)

	// It does not encode: a request is built by its client.
	b, err := json.Marshal(login)
	require.NoError(t, err)
	require.NotContains(t, string(b), pw)

	for _, bad := range []string{`{"password":1}`, `{"password":["x"]}`, `{"password":{}}`} {
		require.Error(t, json.Unmarshal([]byte(bad), &login), bad)
	}
	var empty apitype.LoginRequest
	require.NoError(t, json.Unmarshal([]byte(`{"password":null}`), &empty))
	require.True(t, empty.Password.IsZero())

	require.Equal(t, len(pw), login.Password.Len())
	login.Password.Destroy()
	require.Equal(t, len(pw), login.Password.Len(), "zeroed, not shortened")
}

package keys

import (
	"context"
	"testing"
	"time"

	"github.com/miekg/pkcs11"
	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/softhsm"
)

// TestResolveCache checks which version "newest" means when another HSM
// handle (standing for another process) rotates or deletes keys: this
// process's own changes are seen at once, another's within ResolveTTL, and a
// cached version that disappeared is replaced without an error.
func TestResolveCache(t *testing.T) {
	ctx := context.Background()
	uri := softhsm.NewTestToken(t)
	open := func(ttl time.Duration) *HSM {
		h, err := Open(uri, Options{ResolveTTL: ttl})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, h.Close()) })
		return h
	}
	other, slow, quick, always := open(0), open(time.Hour), open(50*time.Millisecond), open(-1)
	_, err := other.Init(ctx)
	require.NoError(t, err)
	pin, err := other.NewPIN(ctx)
	require.NoError(t, err)
	card := []byte("card-1")
	version := func(h *HSM) int {
		t.Helper()
		p, err := h.PINVerificationValue(ctx, card, pin)
		require.NoError(t, err)
		_, used, err := h.Diversify(ctx, Label{Name: AppRead}, []byte("0123456789abcdef"))
		require.NoError(t, err)
		require.Equal(t, 1, used.Version, "app-read is never rotated here")
		return p.KeyVersion
	}
	require.Equal(t, 1, version(slow))
	require.Equal(t, 1, version(quick))

	rotate := func() int {
		l, err := other.Rotate(ctx, PINKey)
		require.NoError(t, err)
		return l.Version
	}
	require.Equal(t, 2, rotate())
	require.Equal(t, 2, version(other), "a rotation in this HSM is seen at once")
	require.Equal(t, 2, version(always), "a negative TTL lists every time")
	require.Equal(t, 1, version(slow), "within the TTL the cached newest version is used")

	time.Sleep(60 * time.Millisecond)
	require.Equal(t, 2, version(quick), "after the TTL another's rotation is seen")
	require.Equal(t, 3, rotate())
	time.Sleep(60 * time.Millisecond)
	require.Equal(t, 3, version(quick))

	// Another process destroys pin/v1, still cached as newest by slow.
	require.NoError(t, other.withSession(ctx, func(sh pkcs11.SessionHandle) error {
		oh, err := other.object(sh, Label{PINKey, 1}, pkcs11.CKO_SECRET_KEY)
		if err != nil {
			return err
		}
		return other.p.DestroyObject(sh, oh)
	}))
	require.Equal(t, 3, version(slow), "a stale handle drops the cache and the newest version is found")
}

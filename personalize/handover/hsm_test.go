package handover_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"

	"github.com/loopcard/loopcard/keys"
	"github.com/loopcard/loopcard/personalize/handover"
	"github.com/loopcard/loopcard/personalize/handover/audit"
	ht "github.com/loopcard/loopcard/personalize/handover/internal/handovertest"
	"github.com/loopcard/loopcard/softhsm"
)

// hq-sign in a real SoftHSM2 token signs HQ's entries and the
// checkpoints; the export verifies against its verifier key.
func TestHSMHQSign(t *testing.T) {
	ctx := context.Background()
	uri := softhsm.NewTestToken(t)
	h, err := keys.Open(uri, keys.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { h.Close() })
	_, err = h.Init(ctx)
	require.NoError(t, err)
	ks, err := h.Signer(ctx, keys.Label{Name: "hq-sign"})
	require.NoError(t, err)
	require.Equal(t, keys.AlgEd25519, ks.Algorithm())
	hq, err := handover.NewSigner(handover.DefaultOrigin(ht.Org), ks)
	require.NoError(t, err)

	// The key hash is the signed-note one.
	v, err := note.NewVerifier(hq.PublicKey().Vkey())
	require.NoError(t, err)
	require.Equal(t, hq.KeyHash(), v.KeyHash())
	require.Equal(t, hq.Name(), v.Name())

	pool := ht.Pool(t)
	l := ht.Log(t, pool, hq)
	ht.Populate(t, l)
	dir := filepath.Join(t.TempDir(), "export")
	_, err = l.Export(ctx, dir)
	require.NoError(t, err)
	rep, err := audit.Verify(os.DirFS(dir), audit.Options{HQKey: hq.PublicKey().Vkey()})
	require.NoError(t, err)
	require.EqualValues(t, 22, rep.Entries)

	// A checkpoint is a standard signed note.
	msg, err := os.ReadFile(filepath.Join(dir, handover.ExportCheckpoints, handover.CheckpointName(22)))
	require.NoError(t, err)
	n, err := note.Open(msg, note.VerifierList(v))
	require.NoError(t, err)
	require.Equal(t, handover.DefaultOrigin(ht.Org)+"\n22\n"+rep.Root+"\n", n.Text)
}

// Signed notes are Ed25519: an ECDSA hq-sign is refused with a hint.
func TestSignerNeedsEd25519(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	_, err = handover.NewSigner("hq", k)
	require.ErrorIs(t, err, handover.ErrNotEd25519)
	_, err = handover.NewSigner("bad name", k)
	require.ErrorContains(t, err, "no '+', spaces")
}

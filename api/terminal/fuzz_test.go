package terminal_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api/terminal"
	"github.com/loopcard/loopcard/ledger/txid"
)

// FuzzOpenQueue opens arbitrary queue files: no panic, and a file that
// opens once opens again (after its compaction) with the same content.
func FuzzOpenQueue(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "seed.log")
	q, err := terminal.OpenQueue(path)
	require.NoError(f, err)
	card := []byte{4, 1, 1, 1, 1, 1, 1}
	a, b := signedTx(f, q.NextSeq(), card), signedTx(f, q.NextSeq(), card)
	require.NoError(f, q.Intent(a))
	require.NoError(f, q.Mark(terminal.Committed, nil, a.ID))
	require.NoError(f, q.Intent(b))
	require.NoError(f, q.Mark(terminal.Rejected, map[txid.ID]string{b.ID: "bad"}, b.ID))
	require.NoError(f, q.Close())
	seed, err := os.ReadFile(path)
	require.NoError(f, err)
	f.Add(seed)
	f.Add(seed[:len(seed)-5])
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 0, 'S'})
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "q.log")
		require.NoError(t, os.WriteFile(p, data, 0o600))
		q, err := terminal.OpenQueue(p)
		if err != nil {
			return
		}
		items, seq := q.Items(), q.NextSeq()
		require.NoError(t, q.Close())
		q2, err := terminal.OpenQueue(p)
		require.NoError(t, err)
		defer q2.Close()
		require.Equal(t, len(items), len(q2.Items()))
		require.Equal(t, seq, q2.NextSeq(), "the sequence floor survives compaction")
	})
}

package terminal_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api/terminal"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
)

var testKey = ed25519.NewKeyFromSeed(make([]byte, 32))

func signedTx(t testing.TB, seq int64, card []byte) *terminaltx.Signed {
	t.Helper()
	var rnd [10]byte
	_, _ = rand.Read(rnd[:])
	s, err := terminaltx.Sign(&terminaltx.Tx{Kind: terminaltx.KindDebit, ID: txid.New(time.Now(), rnd[:]), Organizer: 1,
		Terminal: "t1", TerminalSeq: seq, Card: card, CardSeq: uint32(seq), Amount: 5, BalanceBefore: 100, BalanceAfter: 95,
		Merchant: "bar", Time: time.Now()}, testKey)
	require.NoError(t, err)
	return s
}

func TestQueueStatesSurviveReopen(t *testing.T) {
	card := []byte{4, 1, 2, 3, 4, 5, 6}
	tests := []struct {
		name  string
		marks []terminal.ItemState
		// want after reopening: pending/committed/rejected counts, unsent
		want   terminal.Counts
		unsent int
	}{
		{"pending stays pending", nil, terminal.Counts{Pending: 1}, 0},
		{"committed is unsent", []terminal.ItemState{terminal.Committed}, terminal.Counts{Committed: 1}, 1},
		{"void is dropped", []terminal.ItemState{terminal.Void}, terminal.Counts{}, 0},
		{"done is dropped", []terminal.ItemState{terminal.Committed, terminal.Done}, terminal.Counts{}, 0},
		{"rejected is kept", []terminal.ItemState{terminal.Committed, terminal.Rejected}, terminal.Counts{Rejected: 1}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "queue.log")
			q, err := terminal.OpenQueue(path)
			require.NoError(t, err)
			seq := q.NextSeq()
			require.Equal(t, int64(1), seq)
			s := signedTx(t, seq, card)
			require.NoError(t, q.Intent(s))
			for _, m := range tt.marks {
				require.NoError(t, q.Mark(m, nil, s.ID))
			}
			require.NoError(t, q.Close())

			q, err = terminal.OpenQueue(path)
			require.NoError(t, err)
			t.Cleanup(func() { q.Close() })
			require.Equal(t, tt.want, q.Counts())
			require.Len(t, q.Unsent(10), tt.unsent)
			require.Equal(t, int64(2), q.NextSeq(), "terminal sequence numbers are never reused")
			if tt.want.Pending == 1 {
				p := q.PendingFor(card)
				require.Len(t, p, 1)
				require.Equal(t, s.Bytes(), p[0].Bytes())
			}
		})
	}
}

func TestQueueTornTailAndCorruption(t *testing.T) {
	card := []byte{4, 9, 9, 9, 9, 9, 9}
	path := filepath.Join(t.TempDir(), "queue.log")
	q, err := terminal.OpenQueue(path)
	require.NoError(t, err)
	a, b := signedTx(t, q.NextSeq(), card), signedTx(t, q.NextSeq(), card)
	require.NoError(t, q.Intent(a))
	require.NoError(t, q.Mark(terminal.Committed, nil, a.ID))
	require.NoError(t, q.Intent(b))
	require.NoError(t, q.Close())
	full, err := os.ReadFile(path)
	require.NoError(t, err)

	// A crash in the middle of the last append: every cut of the last
	// record leaves the first transaction committed and the second gone.
	last := len(full) - len(b.Bytes()) - 9
	for cut := last + 1; cut < len(full); cut += 7 {
		require.NoError(t, os.WriteFile(path, full[:cut], 0o600))
		q, err := terminal.OpenQueue(path)
		require.NoError(t, err, "cut at %d", cut)
		require.Equal(t, terminal.Counts{Committed: 1}, q.Counts())
		require.Equal(t, int64(2), q.NextSeq())
		require.NoError(t, q.Close())
	}

	// A flipped byte before the end is corruption, not a torn tail.
	bad := append([]byte(nil), full...)
	bad[20] ^= 0xFF
	require.NoError(t, os.WriteFile(path, bad, 0o600))
	_, err = terminal.OpenQueue(path)
	require.ErrorIs(t, err, terminal.ErrQueueCorrupt)
}

func TestRecordAndSequenceEncoding(t *testing.T) {
	var id txid.ID
	copy(id[:], "0123456789abcdef")
	tests := []struct {
		name string
		rec  terminal.Record
	}{
		{"debit", terminal.Record{Kind: terminal.RecordDebit, ID: id, CardSeq: 7, Amount: 250, Unix: 1_800_000_000, Who: terminal.WhoHash("bar-1")}},
		{"credit max", terminal.Record{Kind: terminal.RecordCredit, ID: id, CardSeq: 1<<32 - 1, Amount: 1<<32 - 1, Unix: 1, Who: [3]byte{1, 2, 3}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.rec.MarshalBinary()
			require.Len(t, b, terminal.RecordSize)
			got, err := terminal.ParseRecord(append(b, 0, 0)) // a 32-byte record slot
			require.NoError(t, err)
			require.Equal(t, tt.rec, got)
			seq, err := terminal.DecodeSeq(terminal.EncodeSeq(tt.rec.CardSeq, 8))
			require.NoError(t, err)
			require.Equal(t, tt.rec.CardSeq, seq)
		})
	}
	_, err := terminal.ParseRecord(make([]byte, 10))
	require.Error(t, err)
	_, err = terminal.DecodeSeq([]byte{0, 0, 0, 1, 0, 0, 0, 0})
	require.Error(t, err, "a sequence above 2^32-1 is refused")
}

func TestQueueCompactKeepsWhatIsLive(t *testing.T) {
	card := []byte{4, 7, 7, 7, 7, 7, 7}
	path := filepath.Join(t.TempDir(), "queue.log")
	q, err := terminal.OpenQueue(path)
	require.NoError(t, err)
	t.Cleanup(func() { q.Close() })
	var live *terminaltx.Signed
	for i := range 50 {
		s := signedTx(t, q.NextSeq(), card)
		require.NoError(t, q.Intent(s))
		require.NoError(t, q.Mark(terminal.Committed, nil, s.ID))
		if i == 49 {
			live = s
			break
		}
		require.NoError(t, q.Mark(terminal.Done, nil, s.ID))
	}
	before, err := os.Stat(path)
	require.NoError(t, err)
	require.NoError(t, q.Compact())
	after, err := os.Stat(path)
	require.NoError(t, err)
	require.Less(t, after.Size()*10, before.Size(), "finished transactions are dropped")
	require.Equal(t, terminal.Counts{Committed: 1}, q.Counts())
	require.Equal(t, live.ID, q.Unsent(10)[0].ID)
	// Appends go on after a compaction, and the sequence carries on.
	s := signedTx(t, q.NextSeq(), card)
	require.Equal(t, int64(51), s.TerminalSeq)
	require.NoError(t, q.Intent(s))
	require.NoError(t, q.Close())
	q2, err := terminal.OpenQueue(path)
	require.NoError(t, err)
	t.Cleanup(func() { q2.Close() })
	require.Equal(t, terminal.Counts{Pending: 1, Committed: 1}, q2.Counts())
	require.Equal(t, int64(52), q2.NextSeq())
}

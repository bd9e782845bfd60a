package handover_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/personalize/handover"
	ht "github.com/loopcard/loopcard/personalize/handover/internal/handovertest"
)

// seedEntries are valid entries of every type, signed or sealed.
func seedEntries(t testing.TB) []handover.Entry {
	hq := ht.Signer(t, handover.DefaultOrigin(ht.Org))
	north := ht.StoreSigner(t, "north")
	at := time.Date(2026, 7, 1, 9, 30, 0, 120000000, time.UTC)
	sign := func(s *handover.Signer, e handover.Entry) handover.Entry {
		e.V, e.Org, e.At = handover.Version, ht.Org, at
		require.NoError(t, s.SignEntry(&e))
		return e
	}
	out := []handover.Entry{
		sign(hq, handover.Entry{Type: handover.TypeKeyEnrolled, Store: "north", Key: north.PublicKey().Vkey()}),
		sign(hq, handover.Entry{Type: handover.TypeBatchIssued, Batch: 3, Event: "fest-2026", Count: handover.N(99999),
			Root: handover.MerkleRoot([][]byte{[]byte("3-00001")}).String()}),
		sign(hq, handover.Entry{Type: handover.TypeHandedOver, Batch: 3, Store: "north", Count: handover.N(10)}),
		sign(north, handover.Entry{Type: handover.TypeReceived, Batch: 3, Store: "north", Count: handover.N(0)}),
		sign(hq, handover.Entry{Type: handover.TypeCardDestroyed, Card: "3-00007", Note: `shredded <by> "Anna" & Bob: ünïcödé \u2028`}),
	}
	evs, err := handover.SignCardEvents(north, ht.Org, at, []handover.CardEvent{
		{Type: handover.TypeCardSold, Card: ht.Card(t, 3, 1), Store: "north"},
		{Type: handover.TypeCardReturned, Card: ht.Card(t, 3, 1), Store: "north", Note: "tab\there"},
		{Type: handover.TypeCardVoided, Card: ht.Card(t, 3, 2), Store: "north"},
	})
	require.NoError(t, err)
	return append(out, evs...)
}

// The hand-written canonical encoder is json.Marshal, byte for byte.
func TestMarshalIsEncodingJSON(t *testing.T) {
	for _, e := range seedEntries(t) {
		got, err := e.Marshal()
		require.NoError(t, err)
		want, err := json.Marshal(e)
		require.NoError(t, err)
		require.Equal(t, string(want), string(got))
		back, err := handover.ParseEntry(got)
		require.NoError(t, err)
		require.Equal(t, e, back)
	}
}

// FuzzParseEntry: whatever parses marshals back to the same bytes, which
// are what encoding/json writes.
func FuzzParseEntry(f *testing.F) {
	for _, e := range seedEntries(f) {
		b, err := e.Marshal()
		require.NoError(f, err)
		f.Add(b)
		f.Add(bytes.Replace(b, []byte(`"v":1`), []byte(`"v": 1`), 1))
	}
	f.Add([]byte(`{"v":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := handover.ParseEntry(b)
		if err != nil {
			require.ErrorIs(t, err, handover.ErrMalformed)
			return
		}
		back, err := e.Marshal()
		require.NoError(t, err)
		require.Equal(t, b, back)
		var viaJSON handover.Entry
		require.NoError(t, json.Unmarshal(b, &viaJSON))
		require.Equal(t, viaJSON, e, "the fast reader reads what encoding/json reads")
		std, err := json.Marshal(e)
		require.NoError(t, err)
		require.Equal(t, b, std)
		require.False(t, strings.ContainsAny(string(b), "\n\r"), "an entry is one line")
	})
}

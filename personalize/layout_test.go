package personalize

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDefaultLayoutValid(t *testing.T) {
	l := DefaultLayout()
	require.NoError(t, l.Validate())
	k, ok := l.Key(RoleDebit)
	require.True(t, ok)
	require.Equal(t, byte(1), k.No)
	require.Equal(t, "4C4301", l.AID.String())
	// UID(7) || AID(3) || SystemID must be 16..31 bytes for the HSM.
	require.GreaterOrEqual(t, 7+3+len(l.SystemID), 16)
}

func TestLayoutValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Layout)
		want   string
	}{
		{"zero AID", func(l *Layout) { l.AID = AID{} }, "AID 000000"},
		{"short system id", func(l *Layout) { l.SystemID = "LC" }, "system identifier is 2 bytes"},
		{"long system id", func(l *Layout) { l.SystemID = "0123456789012345678901" }, "system identifier is 22 bytes"},
		{"free listing", func(l *Layout) { l.PICCKeySettings = 0x0F }, "free listing"},
		{"free create", func(l *Layout) { l.AppKeySettings = 0x0D }, "free file creation"},
		{"duplicate key", func(l *Layout) { l.Keys[2].No = 1 }, "key number 1 appears twice"},
		{"missing role", func(l *Layout) { l.Keys = l.Keys[:3] }, "no read key"},
		{"bad role", func(l *Layout) { l.Keys[3].Role = "admin" }, `unknown role "admin"`},
		{"master not 0", func(l *Layout) { l.Keys[0].No, l.Keys[1].No = 1, 0 }, "master key must be key 0"},
		{"access to missing key", func(l *Layout) { l.Recent.Access.Read = 7 }, "recent file: read right names key 7"},
		{"duplicate file", func(l *Layout) { l.Recent.No = l.Balance.No }, "number 2 is used twice"},
		{"wrong kind", func(l *Layout) { l.Balance.Kind = StdData }, "balance file: kind"},
		{"value limits", func(l *Layout) { l.Balance.Upper = -1 }, "upper limit -1 is not above"},
		{"negative lower", func(l *Layout) { l.Balance.Lower = -5 }, "lower limit -5 is negative"},
		{"card info too small", func(l *Layout) { l.CardInfo.Size = 10 }, "card info file: 10 bytes"},
		{"one record", func(l *Layout) { l.Recent.Records = 1 }, "want at least 2"},
		{"overflowing records", func(l *Layout) { l.Recent.Records = 1 << 62 }, "at most 4096 bytes"},
		{"bad comm", func(l *Layout) { l.Sequence.Comm = 2 }, "communication mode 2"},
		{"file number", func(l *Layout) { l.Recent.No = 40 }, "number 40 is above 31"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := DefaultLayout()
			tt.change(&l)
			err := l.Validate()
			require.ErrorIs(t, err, ErrLayout)
			require.ErrorContains(t, err, tt.want)
		})
	}
}

func TestParseLayout(t *testing.T) {
	l, err := ParseLayout([]byte(`{"aid":"A1B2C3","system_id":"FESTIVAL2026","balance":{"no":2,"kind":"value","comm":"full","access":{"read":1,"write":1,"read_write":2,"change":0},"upper":25000}}`))
	require.NoError(t, err)
	require.Equal(t, AID{0xA1, 0xB2, 0xC3}, l.AID)
	require.Equal(t, int32(25000), l.Balance.Upper)
	require.Equal(t, DefaultLayout().Recent, l.Recent)

	_, err = ParseLayout([]byte(`{"aid":"A1B2"}`))
	require.ErrorIs(t, err, ErrLayout)
	_, err = ParseLayout([]byte(`{"colour":"red"}`))
	require.ErrorIs(t, err, ErrLayout)
	_, err = ParseLayout([]byte(`{"recent":{"comm":"secret"}}`))
	require.ErrorIs(t, err, ErrLayout)

	// A layout survives a JSON round trip unchanged: batches store it so.
	b, err := json.Marshal(DefaultLayout())
	require.NoError(t, err)
	back, err := ParseLayout(b)
	require.NoError(t, err)
	require.Equal(t, DefaultLayout(), back)
}

func TestAccessBytes(t *testing.T) {
	a := Access{Read: 3, Write: 2, ReadWrite: 1, Change: 0}
	require.Equal(t, [2]byte{0x10, 0x32}, a.Bytes())
	require.Equal(t, a, AccessFromBytes(a.Bytes()))
	require.Equal(t, [2]byte{0xEF, 0xEE}, Access{Read: Free, Write: Free, ReadWrite: Free, Change: Never}.Bytes())
}

func TestCardID(t *testing.T) {
	id, err := NewCardID(12, 42)
	require.NoError(t, err)
	require.Equal(t, "12-00042", id.String())
	require.Equal(t, int64(12), id.Batch())
	require.Equal(t, 42, id.Slot())
	back, err := ParseCardID("12-00042")
	require.NoError(t, err)
	require.Equal(t, id, back)
	for _, bad := range []string{"12", "12-42", "x-00042", "0-00001", "3-00000"} {
		_, err := ParseCardID(bad)
		require.Error(t, err, bad)
	}
	_, err = NewCardID(1, SlotsPerBatch)
	require.Error(t, err)
}

func TestCardInfoRoundTrip(t *testing.T) {
	ci := CardInfo{KeyVersion: 3, CardID: 1200042, OrgID: 7, Event: "summer-2026"}
	b, err := ci.MarshalBinary()
	require.NoError(t, err)
	require.Len(t, b, CardInfoSize)
	require.Equal(t, byte(CardInfoFormat), b[0])
	var back CardInfo
	require.NoError(t, back.UnmarshalBinary(append(b, 0, 0, 0, 0)))
	require.Equal(t, ci, back)

	_, err = CardInfo{OrgID: 1, Event: "a b"}.MarshalBinary()
	require.ErrorIs(t, err, ErrCardInfo)
	_, err = CardInfo{OrgID: 0, Event: "e"}.MarshalBinary()
	require.ErrorIs(t, err, ErrCardInfo)

	for name, bad := range map[string][]byte{
		"short":       b[:5],
		"format":      append([]byte{9}, b[1:]...),
		"padding":     append(append([]byte(nil), b...), 1),
		"long length": append(append([]byte(nil), b[:18]...), 200, 'a'),
		"no org":      append(append(append([]byte(nil), b[:10]...), 0, 0, 0, 0, 0, 0, 0, 0), b[18:]...),
	} {
		require.ErrorIs(t, new(CardInfo).UnmarshalBinary(bad), ErrCardInfo, name)
	}
}

func FuzzCardInfo(f *testing.F) {
	b, _ := CardInfo{KeyVersion: 1, CardID: 100001, OrgID: 1, Event: "e"}.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, in []byte) {
		var ci CardInfo
		if ci.UnmarshalBinary(in) != nil {
			return
		}
		out, err := ci.MarshalBinary()
		require.NoError(t, err)
		var again CardInfo
		require.NoError(t, again.UnmarshalBinary(out))
		require.Equal(t, ci, again)
	})
}

// FuzzParseLayout: any layout accepted survives a JSON round trip and
// stays valid.
func FuzzParseLayout(f *testing.F) {
	b, _ := json.Marshal(DefaultLayout())
	f.Add(b)
	f.Add([]byte(`{"aid":"A1B2C3","balance":{"upper":5}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		l, err := ParseLayout(in)
		if err != nil {
			require.ErrorIs(t, err, ErrLayout)
			return
		}
		out, err := json.Marshal(l)
		require.NoError(t, err)
		back, err := ParseLayout(out)
		require.NoError(t, err)
		require.Equal(t, l, back)
	})
}

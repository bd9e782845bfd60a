package station_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/keys"
	"github.com/loopcard/loopcard/keys/cmac"
	"github.com/loopcard/loopcard/keys/keyderiv"
	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/migrations"
	"github.com/loopcard/loopcard/ledger/pgcluster/pgtest"
	"github.com/loopcard/loopcard/personalize"
	"github.com/loopcard/loopcard/personalize/batch"
	"github.com/loopcard/loopcard/personalize/desfire"
	"github.com/loopcard/loopcard/personalize/labels"
	"github.com/loopcard/loopcard/personalize/reader"
	"github.com/loopcard/loopcard/personalize/station"
	"github.com/loopcard/loopcard/personalize/vcard"
	"github.com/loopcard/loopcard/softhsm"
)

const (
	orgID     = 42
	event     = "summer-2026"
	publicURL = "https://pay.example.com/c/"
)

// Base keys imported into the test HSM, so that the test can recompute
// every card key with the pure-Go reference (keyderiv.AN10922) independently of
// the station, which derives them in the HSM.
var baseKeys = map[string]string{
	keys.PICCMaster: "0F1E2D3C4B5A69788796A5B4C3D2E1F0",
	keys.AppMaster:  "00112233445566778899AABBCCDDEEFF",
	keys.AppDebit:   "A0A1A2A3A4A5A6A7A8A9AAABACADAEAF",
	keys.AppCredit:  "C0C1C2C3C4C5C6C7C8C9CACBCCCDCECF",
	keys.AppRead:    "3E3D3C3B3A393837363534333231302F",
}

type testEnv struct {
	uri     string
	hsm     *keys.HSM
	pool    *pgxpool.Pool
	dbURL   string
	batches *batch.Batches
	ledger  *ledger.Ledger
}

func newEnv(t testing.TB) *testEnv {
	t.Helper()
	ctx := context.Background()
	uri := softhsm.NewTestToken(t)
	h, err := keys.Open(uri, keys.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { h.Close() })
	for name, v := range baseKeys {
		mask := bytes.Repeat([]byte{0x5C}, 16)
		val, _ := hex.DecodeString(v)
		c1, err := keys.ParseComponent([]byte(hex.EncodeToString(xor(val, mask))))
		require.NoError(t, err)
		c2, err := keys.ParseComponent([]byte(hex.EncodeToString(mask)))
		require.NoError(t, err)
		_, err = h.Import(ctx, name, []keys.Component{c1, c2})
		require.NoError(t, err)
	}
	_, err = h.Init(ctx)
	require.NoError(t, err)

	url := pgtest.NewDatabase(t)
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	require.NoError(t, migrations.Up(ctx, pool))
	l := ledger.New(pool, ledger.Options{})
	require.NoError(t, l.AddEvent(ctx, orgID, event, "Summer 2026", time.Time{}))
	return &testEnv{uri: uri, hsm: h, pool: pool, dbURL: url, batches: batch.NewBatches(pool), ledger: l}
}

func xor(a, b []byte) []byte {
	out := make([]byte, len(a))
	for i := range a {
		out[i] = a[i] ^ b[i]
	}
	return out
}

func (e *testEnv) newBatch(t testing.TB, count int) batch.Batch {
	t.Helper()
	b, err := e.batches.Create(context.Background(), orgID, event, count, personalize.DefaultLayout())
	require.NoError(t, err)
	return b
}

// station opens (or reopens, after a "crash") the batch's label spool and
// starts a station on it.
func (e *testEnv) station(t testing.TB, b batch.Batch, spoolPath string, batches station.Batches) (*station.Station, *labels.Spool) {
	t.Helper()
	ctx := context.Background()
	b, err := e.batches.Get(ctx, b.OrgID, b.No)
	require.NoError(t, err)
	sp, _, err := labels.OpenSpool(spoolPath, publicURL)
	require.NoError(t, err)
	t.Cleanup(func() { sp.Close() })
	if batches == nil {
		batches = e.batches
	}
	s, err := station.New(ctx, station.Config{Batch: b, PublicURL: publicURL, HSM: e.hsm, Batches: batches, Spool: sp, Ledger: e.ledger})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s, sp
}

// refKeyBytes recomputes a card's keys from the known base keys with the
// reference implementation: AN10922 in Go, and the event debit key as
// CMAC(app-debit base, keyderiv.EventDebitInput(organizer, event)).
func refKeyBytes(t testing.TB, l personalize.Layout, uid []byte) (picc []byte, app map[byte][]byte) {
	t.Helper()
	div := func(base []byte, aid []byte) []byte {
		m := append(append(append([]byte(nil), uid...), aid...), l.SystemID...)
		k, err := keyderiv.NewAESKey(base)
		require.NoError(t, err)
		d, err := keyderiv.AN10922(k, m)
		require.NoError(t, err)
		return d.Bytes()
	}
	base := func(name string) []byte {
		b, err := hex.DecodeString(baseKeys[name])
		require.NoError(t, err)
		return b
	}
	picc = div(base(keys.PICCMaster), []byte{0, 0, 0})
	app = map[byte][]byte{}
	for _, k := range l.Keys {
		b := base(k.Base)
		if k.Role == personalize.RoleDebit {
			in, err := keyderiv.EventDebitInput(orgID, event)
			require.NoError(t, err)
			ev, err := cmac.Sum(b, in)
			require.NoError(t, err)
			b = ev[:]
		}
		app[k.No] = div(b, l.AID[:])
	}
	return picc, app
}

// refKeys is refKeyBytes as card keys of version 1.
func refKeys(t testing.TB, l personalize.Layout, uid []byte) (picc desfire.Key, app map[byte]desfire.Key) {
	t.Helper()
	p, a := refKeyBytes(t, l, uid)
	picc, err := desfire.NewAESKey(p, 1)
	require.NoError(t, err)
	app = map[byte]desfire.Key{}
	for n, b := range a {
		app[n], err = desfire.NewAESKey(b, 1)
		require.NoError(t, err)
	}
	return picc, app
}

// checkCard authenticates with every recomputed key of the card and reads
// its card info back, independently of the station.
func checkCard(t testing.TB, l personalize.Layout, tr desfire.Transmitter, uid []byte) personalize.CardInfo {
	t.Helper()
	picc, app := refKeys(t, l, uid)
	c := desfire.New(tr)
	require.Error(t, c.AuthenticateLegacy(0, desfire.DefaultDESKey()), "the factory key must be gone")
	require.NoError(t, c.AuthenticateEV2First(0, picc), "card master key")
	ks, err := c.GetKeySettings()
	require.NoError(t, err)
	require.Equal(t, l.PICCKeySettings, ks.Settings)
	require.Equal(t, desfire.KeyAES, ks.KeyType)
	aid := desfire.AID(uint32(l.AID[0]) | uint32(l.AID[1])<<8 | uint32(l.AID[2])<<16)
	require.NoError(t, c.SelectApplication(aid))
	for _, k := range l.Keys {
		require.NoError(t, c.AuthenticateEV2First(k.No, app[k.No]), "key %d", k.No)
	}
	require.NoError(t, c.AuthenticateEV2First(3, app[3]))
	b, err := c.ReadData(l.CardInfo.No, 0, personalize.CardInfoSize, desfire.CommMAC)
	require.NoError(t, err)
	var info personalize.CardInfo
	require.NoError(t, info.UnmarshalBinary(b))
	require.Equal(t, int64(orgID), info.OrgID)
	require.Equal(t, event, info.Event)
	require.Equal(t, byte(1), info.KeyVersion)
	require.NoError(t, c.AuthenticateEV2First(1, app[1]))
	v, err := c.GetValue(l.Balance.No, desfire.CommFull)
	require.NoError(t, err)
	require.Equal(t, int32(0), v)
	return info
}

// checkRecords checks the database and the label spool against the cards:
// every card is recorded exactly once, in the slot its card info names;
// every label's token hashes to the recorded hash and its PIN matches the
// recorded verification value.
func (e *testEnv) checkRecords(t testing.TB, b batch.Batch, spoolPath string, cards map[string][]byte) {
	t.Helper()
	ctx := context.Background()
	got, err := e.batches.Get(ctx, b.OrgID, b.No)
	require.NoError(t, err)
	require.Equal(t, b.Count, got.Done, "every card finished")
	require.Equal(t, batch.StatusComplete, got.Status)

	rows, err := e.pool.Query(ctx, `SELECT slot, uid, token_hash, pvv, pvv_key_version FROM batch_cards
		WHERE org_id = $1 AND batch_no = $2 AND status = 'done' ORDER BY slot`, b.OrgID, b.No)
	require.NoError(t, err)
	type rec struct {
		uid, hash, pvv []byte
		ver            int
	}
	bySlot := map[int]rec{}
	uids := map[string]bool{}
	for rows.Next() {
		var slot int
		var r rec
		require.NoError(t, rows.Scan(&slot, &r.uid, &r.hash, &r.pvv, &r.ver))
		bySlot[slot] = r
		require.False(t, uids[string(r.uid)], "card %X recorded twice", r.uid)
		uids[string(r.uid)] = true
	}
	require.NoError(t, rows.Err())
	require.Len(t, bySlot, b.Count)

	sp, ls, err := labels.OpenSpool(spoolPath, publicURL)
	require.NoError(t, err)
	require.NoError(t, sp.Close())
	require.Len(t, ls, b.Count, "one label per card")
	for _, l := range ls {
		id, err := personalize.ParseCardID(l.Number)
		require.NoError(t, err)
		r, ok := bySlot[id.Slot()]
		require.True(t, ok, "label %s has a recorded card", l.Number)
		require.Equal(t, r.hash, l.Token.Hash(), "label %s: token", l.Number)
		require.NoError(t, e.hsm.VerifyPIN(ctx, r.uid, l.PIN, keys.PVV{KeyVersion: r.ver, MAC: r.pvv}), "label %s: PIN", l.Number)
		info, ok := cards[string(r.uid)]
		require.True(t, ok, "slot %d: card %X was presented", id.Slot(), r.uid)
		var ci personalize.CardInfo
		require.NoError(t, ci.UnmarshalBinary(info))
		require.Equal(t, id, ci.CardID, "card %X carries the number of its slot", r.uid)
	}
	// Every recorded card is in the ledger under the batch's event.
	for _, r := range bySlot {
		info, err := e.ledger.Card(ctx, b.OrgID, r.uid)
		require.NoError(t, err, "card %X is registered in the ledger", r.uid)
		require.Equal(t, b.Event, info.Event)
	}
}

// link is a vcard in the field of an in-process reader, with an optional
// tear: at APDU number tearAt the card leaves the field, before the card
// sees the command or after it processed it.
type link struct {
	vc      *vcard.Card
	n       int
	tearAt  int
	after   bool
	failAt  int // a station crash: the exchange fails without a tear
	removed bool
}

var errCrash = errors.New("station process killed")

func (l *link) Transmit(apdu []byte) ([]byte, error) {
	if l.removed {
		return nil, reader.ErrRemoved
	}
	l.n++
	if l.n == l.failAt {
		return nil, errCrash
	}
	if l.n == l.tearAt && !l.after {
		l.vc.PowerOff()
		l.removed = true
		return nil, fmt.Errorf("transmit: %w", reader.ErrRemoved)
	}
	r := l.vc.Transmit(apdu)
	if l.n == l.tearAt {
		l.vc.PowerOff()
		l.removed = true
		return nil, fmt.Errorf("transmit: %w", reader.ErrRemoved)
	}
	return r, nil
}

func (l *link) UID() ([]byte, error)                 { return l.vc.UID(), nil }
func (l *link) WaitForRemoval(context.Context) error { return nil }
func (l *link) Close() error                         { return nil }

// present powers the card up in the field.
func present(vc *vcard.Card) *link {
	vc.PowerOn()
	return &link{vc: vc}
}

func newCard(t testing.TB, i int) *vcard.Card {
	t.Helper()
	vc, err := vcard.New(vcard.Options{UID: []byte{0x04, 0x5E, 0x11, 0x00, byte(i >> 16), byte(i >> 8), byte(i)}})
	require.NoError(t, err)
	return vc
}

// readInfo reads a finished card's info with the reference keys.
func readInfo(t testing.TB, l personalize.Layout, vc *vcard.Card) []byte {
	t.Helper()
	vc.PowerOn()
	info := checkCard(t, l, &link{vc: vc}, vc.UID())
	b, err := info.MarshalBinary()
	require.NoError(t, err)
	return b
}

func spoolPath(t testing.TB) string { return filepath.Join(t.TempDir(), "labels.csv") }

package terminal

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/api/keydelivery"
	"github.com/loopcard/loopcard/keys/keyderiv"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
	"github.com/loopcard/loopcard/personalize"
	"github.com/loopcard/loopcard/personalize/desfire"
)

// CardWrite is what a load did to the card: its new sequence number and
// its balance before and after.
type CardWrite struct {
	Seq           uint32
	Before, After int64
}

// Load is a pending load (an online top-up) written onto a card.
type Load struct {
	ID     txid.ID
	Amount int64
	// Write is nil when the load was found on the card already (written
	// by an earlier attempt whose confirmation was lost) and the card has
	// moved on since, so its balances at the time are not known.
	Write *CardWrite
	// Again is true when the load was on the card already.
	Again bool
}

// Confirm tells the ledger that a load is on the card.
type Confirm func(ctx context.Context, card []byte, l Load) error

// WritePendingLoads writes, while online, the card's pending loads onto
// it: for each load the API lists (GET /v1/terminal/pending-loads), it
// fetches the card's credit key for that one load (POST
// /v1/terminal/credit-keys, wrapped to this terminal, valid a minute),
// credits the card in one DESFire transaction with a record carrying the
// load's id, and calls confirm. A load whose record is on the card already
// is confirmed without being written again, so a crash between the card's
// commit and the confirmation never loads the money twice.
func (t *Terminal) WritePendingLoads(ctx context.Context, card Card, confirm Confirm) ([]Load, error) {
	t.cardMu.Lock()
	defer t.cardMu.Unlock()
	uid, err := card.UID()
	if err != nil {
		return nil, fmt.Errorf("terminal: card UID: %w", err)
	}
	var pl struct {
		Loads []apitype.PendingLoad `json:"loads"`
	}
	q := "/v1/terminal/pending-loads?card=" + url.QueryEscape(terminaltx.CardHex(uid))
	if err := t.cl.call(ctx, "GET", q, nil, &pl, true, t.sessionKeyID()); err != nil {
		return nil, fmt.Errorf("terminal: pending loads: %w", err)
	}
	var done []Load
	for _, p := range pl.Loads {
		l, err := t.writeLoad(ctx, card, uid, p)
		if err != nil {
			return done, err
		}
		if err := confirm(ctx, uid, l); err != nil {
			return done, fmt.Errorf("terminal: confirm load %s: %w", p.ID, err)
		}
		t.log.Info("terminal: pending load written", "card", terminaltx.CardHex(uid), "load", p.ID, "amount", l.Amount, "again", l.Again)
		done = append(done, l)
	}
	return done, nil
}

// ConfirmLoad tells the ledger, through the API (POST
// /v1/terminal/loads/{load}/written), that load l is on the card: the
// Confirm an online terminal passes to WritePendingLoads. Repeating it
// changes nothing.
func (t *Terminal) ConfirmLoad(ctx context.Context, card []byte, l Load) error {
	req := apitype.LoadWrittenRequest{Card: terminaltx.CardHex(card)}
	if l.Write != nil {
		req.Write = &apitype.CardWrite{Seq: l.Write.Seq, Before: l.Write.Before, After: l.Write.After}
	}
	return t.cl.call(ctx, "POST", "/v1/terminal/loads/"+l.ID.String()+"/written", req, nil, true, t.sessionKeyID())
}

func (t *Terminal) writeLoad(ctx context.Context, card Card, uid []byte, p apitype.PendingLoad) (Load, error) {
	id, err := parseID(p.ID)
	if err != nil {
		return Load{}, err
	}
	var ck apitype.CreditKeyResponse
	if err := t.cl.call(ctx, "POST", "/v1/terminal/credit-keys", apitype.CreditKeyRequest{Card: terminaltx.CardHex(uid), Load: p.ID},
		&ck, true, t.sessionKeyID()); err != nil {
		return Load{}, fmt.Errorf("terminal: credit key: %w", err)
	}
	b := ck.Binding
	if b.Kind != keydelivery.KindCredit || !bytes.Equal(b.Card, uid) || b.Terminal != t.id.Terminal || b.Organizer != t.id.Org || ck.Load != p.ID {
		return Load{}, errors.New("terminal: credit key is for another card, load or terminal")
	}
	raw, err := keydelivery.Unwrap(t.kex, &ck.Wrapped, t.now())
	if err != nil {
		return Load{}, fmt.Errorf("terminal: credit key: %w", err)
	}
	k, err := keyderiv.NewAESKey(raw)
	clear(raw)
	if err != nil {
		return Load{}, err
	}
	defer k.Destroy()
	kb := k.Bytes()
	key, err := newCardKey(kb)
	clear(kb)
	if err != nil {
		return Load{}, err
	}
	defer key.Wipe()
	// The credit key may write the recent file but not read it: the
	// records are read with the debit key.
	dk, err := t.cardKey(uid)
	if err != nil {
		return Load{}, err
	}
	defer dk.Wipe()
	debit, ok := t.app.Layout.Key(personalize.RoleDebit)
	if !ok {
		return Load{}, errors.New("terminal: layout has no debit key")
	}
	return t.app.WriteLoad(card, LoadKeys{RecordsNo: debit.No, Records: dk, Credit: key}, id, ck.Amount, t.id.Terminal, t.now())
}

// LoadKeys are the card keys that write one load: Records, the card's key
// number RecordsNo, reads its recent records (the debit key for a
// terminal, the read key for a store); Credit is the card's credit key,
// delivered for this one load.
type LoadKeys struct {
	RecordsNo byte
	Records   desfire.Key
	Credit    desfire.Key
}

// WriteLoad writes load id of amount onto card in one DESFire transaction
// (credit the value file, next card sequence, a credit record carrying the
// load's id and the writer's tag WhoHash(who)), and returns what it did.
// A load whose record is on the card already is not written again:
// Load.Again is set, with the card write when the card has not moved on
// since. The terminal's online loads and the store client both write
// loads with it. The caller wipes the keys.
func (a App) WriteLoad(card Card, k LoadKeys, id txid.ID, amount int64, who string, now time.Time) (Load, error) {
	if amount <= 0 || amount > math.MaxInt32 {
		return Load{}, fmt.Errorf("terminal: load amount %d out of range", amount)
	}
	rs, err := a.Open(card, k.RecordsNo, k.Records)
	if err != nil {
		return Load{}, err
	}
	recs, err := rs.Records()
	if err != nil {
		return Load{}, err
	}
	credit, ok := a.Layout.Key(personalize.RoleCredit)
	if !ok {
		return Load{}, errors.New("terminal: layout has no credit key")
	}
	s, err := a.Open(card, credit.No, k.Credit)
	if err != nil {
		return Load{}, err
	}
	st, err := s.Read()
	if err != nil {
		return Load{}, err
	}
	l := Load{ID: id, Amount: amount}
	for _, r := range recs {
		if r.ID == id && r.Kind == RecordCredit {
			l.Again = true
			if r.CardSeq == st.Seq {
				l.Write = &CardWrite{Seq: st.Seq, Before: st.Balance - amount, After: st.Balance}
			}
			return l, nil
		}
	}
	rec := Record{Kind: RecordCredit, ID: id, CardSeq: st.Seq + 1, Amount: uint32(amount), Unix: uint32(now.Unix()), Who: WhoHash(who)}
	if err := s.Stage(st, -amount, rec); err != nil {
		return Load{}, err
	}
	if err := s.Commit(); err != nil {
		return Load{}, err
	}
	l.Write = &CardWrite{Seq: st.Seq + 1, Before: st.Balance, After: st.Balance + amount}
	return l, nil
}

func parseID(s string) (txid.ID, error) {
	var id txid.ID
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(b) != len(id) || len(s) != 36 {
		return id, fmt.Errorf("terminal: load id %q is not a UUID", s)
	}
	copy(id[:], b)
	return id, nil
}

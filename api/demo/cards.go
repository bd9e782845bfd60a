package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/api/terminal"
	"github.com/loopcard/loopcard/keys"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/personalize"
	"github.com/loopcard/loopcard/personalize/batch"
	"github.com/loopcard/loopcard/personalize/desfire"
	"github.com/loopcard/loopcard/personalize/labels"
	"github.com/loopcard/loopcard/personalize/station"
	"github.com/loopcard/loopcard/personalize/vcard"
)

// PublicURL is the cardholder page the demo's QR codes point at.
const PublicURL = "https://pay.loopcard.example/c/"

// IssuedCard is a personalized virtual card.
type IssuedCard struct {
	Card   *vcard.Card
	UID    []byte
	Number string
	// StatePath is the card's state file ("" for a card kept in memory).
	StatePath string
}

// UIDHex is the card's UID as the ledger writes it.
func (c *IssuedCard) UIDHex() string { return terminaltx.CardHex(c.UID) }

// Field is the card as a terminal sees it in its field.
func (c *IssuedCard) Field() terminal.Card { return &station.VirtualCard{Card: c.Card} }

// Issued is a personalized batch.
type Issued struct {
	Batch batch.Batch
	Cards []*IssuedCard
	// Labels are the batch's labels (QR token and PIN): print only.
	Labels []labels.Label
	// Spool is the label spool file.
	Spool string
}

// IssueCards creates a batch of n cards for event, personalizes n new
// virtual cards through the station (the same code path as
// `loopcard personalize --reader virtual`), and registers them in the
// ledger. With cardDir, each card keeps its state in a file there.
// progress, when not nil, is called after each card.
func (s *Stack) IssueCards(ctx context.Context, org int64, event string, n int, dir, cardDir string, progress func(done int)) (*Issued, error) {
	b, err := s.Batches.Create(ctx, org, event, n, personalize.DefaultLayout())
	if err != nil {
		return nil, err
	}
	out := &Issued{Batch: b, Spool: filepath.Join(dir, fmt.Sprintf("batch-%d-spool.csv", b.No))}
	spool, _, err := labels.OpenSpool(out.Spool, PublicURL)
	if err != nil {
		return nil, err
	}
	defer spool.Close()
	st, err := station.New(ctx, station.Config{Batch: b, PublicURL: PublicURL, HSM: s.HSM, Store: s.Batches, Spool: spool, Logger: s.log})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	var uids [][]byte
	for i := range n {
		opts := vcard.Options{}
		vc, err := vcard.New(opts)
		if err != nil {
			return nil, err
		}
		ic := &IssuedCard{Card: vc, UID: vc.UID()}
		if cardDir != "" {
			ic.StatePath = filepath.Join(cardDir, terminaltx.CardHex(ic.UID)+".json")
			// Reload with a state file: the card keeps its content there.
			if vc, err = vcard.New(vcard.Options{UID: ic.UID, StatePath: ic.StatePath}); err != nil {
				return nil, err
			}
			ic.Card = vc
		}
		res, err := st.Personalize(ctx, &station.VirtualCard{Card: vc})
		if err != nil {
			return nil, fmt.Errorf("demo: personalize card %d: %w", i+1, err)
		}
		ic.Number = res.Number
		out.Cards = append(out.Cards, ic)
		uids = append(uids, ic.UID)
		if progress != nil {
			progress(i + 1)
		}
	}
	if err := s.Ledger.RegisterCards(ctx, org, event, uids); err != nil {
		return nil, err
	}
	spooled, err := spool.Labels()
	if err != nil {
		return nil, err
	}
	hashes, err := s.Batches.TokenHashes(ctx, org, b.No)
	if err != nil {
		return nil, err
	}
	if out.Labels, err = station.PrintLabels(spooled, hashes); err != nil {
		return nil, err
	}
	if out.Batch, err = s.Batches.Get(ctx, org, b.No); err != nil {
		return nil, err
	}
	return out, nil
}

// CashLoad is a store loading cash onto a card: it records the top-up
// through the store API (a pending load), writes the credit onto the card
// with the card's credit key, and confirms the card write through the
// store API. It returns the card's state after the load.
func (s *Stack) CashLoad(ctx context.Context, org int64, storeToken, store string, c *IssuedCard, amount int64) (terminal.State, error) {
	var mr api.MoneyResponse
	if err := staffMoneyCall(ctx, s.HTTP, s.URL, storeToken, newID().String(), "POST", "/v1/stores/"+store+"/topups",
		api.TopUpRequest{Card: c.UIDHex(), Amount: amount}, &mr); err != nil {
		return terminal.State{}, err
	}
	app := terminal.App{Layout: personalize.DefaultLayout()}
	ck, ok := app.Layout.Key(personalize.RoleCredit)
	if !ok {
		return terminal.State{}, fmt.Errorf("demo: layout has no credit key")
	}
	m, err := keys.DiversificationInput(c.UID, app.Layout.AID[:], []byte(app.Layout.SystemID))
	if err != nil {
		return terminal.State{}, err
	}
	k, used, err := s.HSM.Diversify(ctx, keys.Label{Name: ck.Base}, m)
	if err != nil {
		return terminal.State{}, err
	}
	raw := k.Bytes()
	k.Destroy()
	key, err := desfireKey(raw, byte(used.Version))
	clear(raw)
	if err != nil {
		return terminal.State{}, err
	}
	defer key.Wipe()
	sess, err := app.Open(c.Field(), ck.No, key)
	if err != nil {
		return terminal.State{}, err
	}
	st, err := sess.Read()
	if err != nil {
		return terminal.State{}, err
	}
	id, err := uuid(mr.Load)
	if err != nil {
		return terminal.State{}, err
	}
	rec := terminal.Record{Kind: terminal.RecordCredit, ID: id, CardSeq: st.Seq + 1, Amount: uint32(amount),
		Unix: uint32(time.Now().Unix()), Who: terminal.WhoHash(store)}
	if err := sess.Stage(st, -amount, rec); err != nil {
		return terminal.State{}, err
	}
	if err := sess.Commit(); err != nil {
		return terminal.State{}, err
	}
	after := terminal.State{Balance: st.Balance + amount, Seq: st.Seq + 1}
	req := api.LoadWrittenRequest{Card: c.UIDHex(), Write: &api.CardWrite{Seq: after.Seq, Before: st.Balance, After: after.Balance}}
	if err := staffMoneyCall(ctx, s.HTTP, s.URL, storeToken, newID().String(), "POST", "/v1/stores/"+store+"/loads/"+mr.Load+"/written", req, nil); err != nil {
		return after, err
	}
	return after, nil
}

func uuid(s string) (terminaltx.ID, error) {
	var id terminaltx.ID
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("demo: %q is not a UUID", s)
	}
	copy(id[:], b)
	return id, nil
}

func desfireKey(raw []byte, version byte) (desfire.Key, error) {
	return desfire.NewAESKey(raw, version)
}

func newID() terminaltx.ID {
	var r [10]byte
	_, _ = rand.Read(r[:])
	return terminaltx.NewID(time.Now(), r[:])
}

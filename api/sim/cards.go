package sim

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/loopcard/loopcard/api/storeclient"
	"github.com/loopcard/loopcard/api/terminal"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/personalize"
	"github.com/loopcard/loopcard/personalize/batch"
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
	// Labels are the batch's labels (QR token and PIN): print only. They
	// are the one copy: the station's label spool is removed once they are
	// read from it.
	Labels []labels.Label
}

// IssueCards creates a batch of n cards for event, personalizes n new
// virtual cards through the station, which registers each in the ledger
// (the same code path as `loopcard personalize --reader virtual`). With
// cardDir, each card keeps its state in a file there.
// progress, when not nil, is called after each card.
func (s *Stack) IssueCards(ctx context.Context, org int64, event string, n int, dir, cardDir string, progress func(done int)) (*Issued, error) {
	b, err := s.Batches.Create(ctx, org, event, n, personalize.DefaultLayout())
	if err != nil {
		return nil, err
	}
	out := &Issued{Batch: b}
	// The station needs a spool (it syncs each label before it records the
	// card), but a simulation cannot resume a batch: once the labels are
	// read back, the spool would be a second copy of every token and PIN,
	// so it is removed whatever happens (issue 17 L7).
	spoolPath := filepath.Join(dir, fmt.Sprintf("batch-%d-spool.csv", b.No))
	spool, _, err := labels.OpenSpool(spoolPath, PublicURL)
	if err != nil {
		return nil, err
	}
	defer func() {
		spool.Close()
		if err := os.Remove(spoolPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Error("sim: the label spool was not removed: delete it, it holds every token and PIN", "file", spoolPath, "err", err)
		}
	}()
	st, err := station.New(ctx, station.Config{Batch: b, PublicURL: PublicURL, HSM: s.HSM, Batches: s.Batches, Spool: spool, Ledger: s.Ledger, Logger: s.log})
	if err != nil {
		return nil, err
	}
	defer st.Close()
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
			return nil, fmt.Errorf("sim: personalize card %d: %w", i+1, err)
		}
		ic.Number = res.Number
		out.Cards = append(out.Cards, ic)
		if progress != nil {
			progress(i + 1)
		}
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

// CashLoad is a store loading cash onto a card with the store client
// (api/storeclient), as `loopcard store topup` does: the top-up is a
// pending load until the client has written it onto the card with the
// card's credit key the API delivers for that load, and confirmed it. It
// returns the card's state after the load.
func (s *Stack) CashLoad(ctx context.Context, org int64, storeToken, store string, c *IssuedCard, amount int64) (terminal.State, error) {
	sc, err := s.storeClient(ctx, org, storeToken, store)
	if err != nil {
		return terminal.State{}, err
	}
	res, err := sc.TopUp(ctx, c.Field(), amount)
	if err != nil {
		return terminal.State{}, err
	}
	if res.Load == nil || res.Load.Write == nil {
		return terminal.State{}, fmt.Errorf("sim: top-up %s: the card's write is not known", res.ID)
	}
	return terminal.State{Balance: res.Load.Write.After, Seq: res.Load.Write.Seq}, nil
}

// StoreClient returns the stack's store client of the store (its state
// under the data directory), opened on first use with storeToken.
func (s *Stack) storeClient(ctx context.Context, org int64, storeToken, store string) (*storeclient.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := fmt.Sprintf("%d/%s", org, store)
	if sc := s.stores[k]; sc != nil {
		return sc, nil
	}
	sc, err := storeclient.Open(ctx, storeclient.Config{StateDir: filepath.Join(s.dataDir, "stores", fmt.Sprintf("org%d-%s", org, store)),
		URL: s.URL, HTTP: s.HTTP, Org: org, Store: store, Token: storeToken, Logger: s.log})
	if err != nil {
		return nil, err
	}
	if s.stores == nil {
		s.stores = map[string]*storeclient.Client{}
	}
	s.stores[k] = sc
	s.closers = append(s.closers, sc.Close)
	return sc, nil
}

// StoreClient returns the stack's store client of the store, as CashLoad
// uses it (opened on first use with storeToken).
func (s *Stack) StoreClient(ctx context.Context, org int64, storeToken, store string) (*storeclient.Client, error) {
	return s.storeClient(ctx, org, storeToken, store)
}

package pos

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/loopcard/loopcard/api/terminal"
	"github.com/loopcard/loopcard/ledger/menu"
	"github.com/loopcard/loopcard/ledger/terminaltx"
)

// Line is one line of a basket: a product and a quantity; a negative
// quantity is a returned deposit item (a cup brought back).
type Line struct {
	Product menu.Product
	Qty     int32
}

// Amount is the line's total in cents.
func (l Line) Amount() int64 { return int64(l.Qty) * l.Product.Price }

// Total is the sum of the lines' amounts.
func Total(lines []Line) int64 {
	var t int64
	for _, l := range lines {
		t += l.Amount()
	}
	return t
}

// Receipt is a transaction the till took.
type Receipt struct {
	ID   string
	Kind string // KindPayment, KindVoid or KindReturn
	// Amount is what left the card (negative: what went onto it).
	Amount int64
	// BalanceAfter is the card's balance after it; for a void or a return,
	// only when Written.
	BalanceAfter int64
	// Written is false for a credit (void, return) the ledger booked but
	// that did not reach the card now (it left the reader): the card gets
	// it at its next online tap.
	Written  bool
	Card     string // the card's UID, hex
	At       time.Time
	Lines    []Line
	Uploaded bool
}

// Kinds of receipts.
const (
	KindPayment = "payment"
	KindVoid    = "void"
	KindReturn  = "return"
)

// Errors of the till.
var (
	// ErrNotSupported: the terminal cannot do this (a deposit return
	// without the server's menu).
	ErrNotSupported = errors.New("pos: the terminal cannot do this")
	// ErrMixedReturn: a basket that gives money back holds purchases too;
	// a deposit return takes returned items only.
	ErrMixedReturn = errors.New("pos: a basket that gives money back holds returned deposit items only")
	// ErrOffline: a void or a deposit return needs the server, which does
	// not answer.
	ErrOffline = errors.New("pos: the server cannot be reached")
)

// Till is what the bar app needs from the terminal. Card errors wrap the
// terminal's sentinels (terminal.ErrInsufficient, ErrCardBlocked,
// ErrUncertain, ErrUnresolved, ErrNoSessionKey, ErrNothingToVoid), or are
// ErrNotSupported, ErrMixedReturn, ErrOffline or a *terminal.HTTPError.
type Till interface {
	// Menu is the menu in use; ok is false when there is none.
	Menu() (m menu.Menu, ok bool)
	// Pay takes the basket (its total must be positive) from the card in
	// the field.
	Pay(ctx context.Context, card terminal.Card, lines []Line) (Receipt, error)
	// ReturnDeposit credits the card in the field for a basket of
	// returned deposit items only (its total is negative), online.
	ReturnDeposit(ctx context.Context, card terminal.Card, lines []Line) (Receipt, error)
	// VoidLast gives the last payment back to its card, which must be in
	// the field, online.
	VoidLast(ctx context.Context, card terminal.Card) (Receipt, error)
	// Balance reads the card's balance.
	Balance(ctx context.Context, card terminal.Card) (int64, error)
	// Unsent is how many transactions wait for the upload and the time of
	// the oldest (zero when none).
	Unsent() (n int, oldest time.Time)
	// Recent returns up to n of the last transactions, newest first.
	Recent(n int) []Receipt
	// Online reports whether the last contact with the server worked.
	Online() bool
}

// TerminalTill is the Till over the reference terminal (api/terminal): the
// menu is the one the terminal synced from the server (with its session
// key, kept for offline use), else a local file's (--menu); a basket of
// the synced menu is paid as a version 2 transaction carrying its lines,
// one of a local file's as a version 1 debit of its total (a local menu
// has no version the ledger knows: the report shows such payments
// unitemized). A void and a deposit return are online: the ledger books
// the credit and the terminal writes it onto the card in the field.
type TerminalTill struct {
	t         *terminal.Terminal
	localMenu *menu.Menu
	// pendingLoads is how long a tap may wait for the server to list the
	// card's online top-ups (written first, as `terminal pay` does).
	pendingLoads time.Duration

	mu      sync.Mutex
	recent  []Receipt
	online  bool
	contact time.Time
}

// NewTerminalTill is the Till of t. localMenu, when not nil, is the menu
// of a file (--menu, LoadMenuFile), used while the terminal has none of
// its own.
func NewTerminalTill(t *terminal.Terminal, localMenu *menu.Menu) *TerminalTill {
	return &TerminalTill{t: t, localMenu: localMenu, pendingLoads: 2 * time.Second, online: true}
}

// Menu implements Till: the terminal's synced menu first.
func (tt *TerminalTill) Menu() (menu.Menu, bool) {
	if m, ok := tt.t.Menu(); ok {
		return m, true
	}
	if tt.localMenu != nil {
		return *tt.localMenu, true
	}
	return menu.Menu{}, false
}

// writeLoads writes the card's online top-ups first, as `terminal pay`
// does; offline it gives up quickly and the payment goes on.
func (tt *TerminalTill) writeLoads(ctx context.Context, card terminal.Card) {
	ctx, cancel := context.WithTimeout(ctx, tt.pendingLoads)
	defer cancel()
	_, err := tt.t.WritePendingLoads(ctx, card, tt.t.ConfirmLoad)
	tt.Contact(err)
}

// items prices lines with the terminal's synced menu (terminal.Items);
// ok is false when the terminal has none (a local file's menu is in use).
func (tt *TerminalTill) items(lines []Line) (items []terminaltx.Item, ok bool, err error) {
	if _, synced := tt.t.Menu(); !synced {
		return nil, false, nil
	}
	tl := make([]terminal.Line, len(lines))
	for i, l := range lines {
		tl[i] = terminal.Line{Product: l.Product.ID, Quantity: l.Qty}
	}
	items, err = tt.t.Items(tl)
	return items, true, err
}

// Pay implements Till: a version 2 debit carrying the basket's lines
// (terminal.Pay), or with a local file's menu one debit of its total.
func (tt *TerminalTill) Pay(ctx context.Context, card terminal.Card, lines []Line) (Receipt, error) {
	total := Total(lines)
	if total <= 0 {
		return Receipt{}, fmt.Errorf("pos: a payment of %d cents: the basket's total must be positive", total)
	}
	items, synced, err := tt.items(lines)
	if err != nil {
		return Receipt{}, err
	}
	tt.writeLoads(ctx, card)
	var s *terminaltx.Signed
	if synced {
		s, err = tt.t.Pay(card, items)
	} else {
		s, err = tt.t.Debit(card, total)
	}
	if err != nil {
		return Receipt{}, err
	}
	r := Receipt{ID: s.ID.String(), Kind: KindPayment, Amount: s.Amount, BalanceAfter: s.BalanceAfter, Written: true,
		Card: terminaltx.CardHex(s.Card), At: s.Time, Lines: lines}
	tt.add(r)
	return r, nil
}

// ReturnDeposit implements Till: returned deposit items only, credited
// through a load the ledger books (terminal.DepositReturn) and the
// terminal writes onto the card.
func (tt *TerminalTill) ReturnDeposit(ctx context.Context, card terminal.Card, lines []Line) (Receipt, error) {
	for _, l := range lines {
		if l.Qty > 0 || !l.Product.Deposit {
			return Receipt{}, ErrMixedReturn
		}
	}
	items, synced, err := tt.items(lines)
	if err != nil {
		return Receipt{}, err
	}
	if !synced {
		// The ledger prices a return with the merchant's menu on the
		// server; a local file's is not one.
		return Receipt{}, ErrNotSupported
	}
	c, err := tt.t.DepositReturn(ctx, card, items)
	if err != nil {
		return Receipt{}, tt.offlineErr(err)
	}
	r := tt.credit(card, KindReturn, c, lines)
	tt.add(r)
	return r, nil
}

// VoidLast implements Till: the terminal's void of the card's last
// payment (terminal.VoidLast, online).
func (tt *TerminalTill) VoidLast(ctx context.Context, card terminal.Card) (Receipt, error) {
	c, err := tt.t.VoidLast(ctx, card)
	if err != nil {
		return Receipt{}, tt.offlineErr(err)
	}
	r := tt.credit(card, KindVoid, c, nil)
	tt.add(r)
	return r, nil
}

// offlineErr records the contact of an online operation and turns a
// failed connection into ErrOffline.
func (tt *TerminalTill) offlineErr(err error) error {
	var ue *url.Error
	var he *terminal.HTTPError
	switch {
	case errors.As(err, &ue) || errors.Is(err, context.DeadlineExceeded):
		tt.Contact(err)
		return fmt.Errorf("%w: %w", ErrOffline, err)
	case errors.As(err, &he):
		tt.Contact(nil)
	}
	return err
}

// credit is the receipt of a credit back to the card.
func (tt *TerminalTill) credit(card terminal.Card, kind string, c terminal.Credit, lines []Line) Receipt {
	r := Receipt{ID: c.Load.String(), Kind: kind, Amount: -c.Amount, At: time.Now(), Lines: lines}
	if uid, err := card.UID(); err == nil {
		r.Card = terminaltx.CardHex(uid)
	}
	if c.Written != nil && c.Written.Write != nil {
		r.Written, r.BalanceAfter = true, c.Written.Write.After
	}
	return r
}

// Balance implements Till.
func (tt *TerminalTill) Balance(ctx context.Context, card terminal.Card) (int64, error) {
	tt.writeLoads(ctx, card)
	return tt.t.Balance(card)
}

// Unsent implements Till: the queue's committed transactions not yet
// uploaded, and pending ones whose outcome the card still has to tell.
func (tt *TerminalTill) Unsent() (int, time.Time) {
	var oldest time.Time
	n := 0
	for _, it := range tt.t.Queue().Items() {
		if it.State != terminal.Committed && it.State != terminal.Pending {
			continue
		}
		n++
		if at := it.Tx.Time; oldest.IsZero() || at.Before(oldest) {
			oldest = at
		}
	}
	return n, oldest
}

// maxRecent is how many receipts the till remembers.
const maxRecent = 20

func (tt *TerminalTill) add(r Receipt) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	tt.recent = append([]Receipt{r}, tt.recent...)
	if len(tt.recent) > maxRecent {
		tt.recent = tt.recent[:maxRecent]
	}
}

// Recent implements Till: the receipts of this run of the app, with
// whether the ledger has them.
func (tt *TerminalTill) Recent(n int) []Receipt {
	tt.mu.Lock()
	out := append([]Receipt(nil), tt.recent[:min(n, len(tt.recent))]...)
	tt.mu.Unlock()
	state := map[string]terminal.ItemState{}
	for _, it := range tt.t.Queue().Items() {
		state[it.Tx.ID.String()] = it.State
	}
	for i := range out {
		st, ok := state[out[i].ID]
		// Compacted away, or done: the ledger has it.
		out[i].Uploaded = !ok || st == terminal.Done
	}
	return out
}

// Online implements Till.
func (tt *TerminalTill) Online() bool {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return tt.online
}

// Contact records the outcome of a call to the server: the uploader's
// report (as RunUploader's report function, through Report) and the taps'
// pending-load lookups.
func (tt *TerminalTill) Contact(err error) {
	// An answer of the server, even a refusal, or a card error is contact;
	// a failed connection or a timeout is not.
	var ue *url.Error
	down := errors.As(err, &ue) || errors.Is(err, context.DeadlineExceeded)
	tt.mu.Lock()
	defer tt.mu.Unlock()
	tt.online, tt.contact = !down, time.Now()
}

// Report is RunUploader's report function.
func (tt *TerminalTill) Report(_ terminal.UploadResult, err error) { tt.Contact(err) }

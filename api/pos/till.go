package pos

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/loopcard/loopcard/api/terminal"
	"github.com/loopcard/loopcard/ledger/terminaltx"
)

// Line is one line of a basket: a product and a quantity; a negative
// quantity is a returned deposit item (a cup brought back).
type Line struct {
	Product Product
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
	Amount       int64
	BalanceAfter int64
	Card         string // the card's UID, hex
	At           time.Time
	Lines        []Line
	Uploaded     bool
}

// Kinds of receipts.
const (
	KindPayment = "payment"
	KindVoid    = "void"
	KindReturn  = "return"
)

// ErrNotSupported: the terminal cannot do this yet (a void, or a basket
// that gives money back to the card).
var ErrNotSupported = errors.New("pos: the terminal cannot do this yet")

// Till is what the bar app needs from the terminal. Card errors wrap the
// terminal's sentinels (terminal.ErrInsufficient, ErrCardBlocked,
// ErrUncertain, ErrUnresolved, ErrNoSessionKey).
type Till interface {
	// Menu is the menu in use; ok is false when there is none.
	Menu() (m Menu, ok bool)
	// Pay takes the basket (its total must be positive) from the card in
	// the field.
	Pay(ctx context.Context, card terminal.Card, lines []Line) (Receipt, error)
	// ReturnDeposit credits the card in the field for a basket of
	// returned deposit items only (its total is negative).
	ReturnDeposit(ctx context.Context, card terminal.Card, lines []Line) (Receipt, error)
	// VoidLast gives the last payment back to its card, which must be in
	// the field.
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

// TerminalTill is the Till over the reference terminal as it is today:
// a basket is one debit of its total (terminaltx version 1, no line items),
// the menu is a local file, and a void or a deposit return is not
// possible (ErrNotSupported).
//
// MERGE(i19a): when api/terminal has menus and line items, the marked
// methods switch to (*terminal.Terminal).Menu, Pay(card, items), the void
// of the last payment and the deposit return: a few lines each.
type TerminalTill struct {
	t         *terminal.Terminal
	localMenu *Menu
	// pendingLoads is how long a tap may wait for the server to list the
	// card's online top-ups (written first, as `terminal pay` does).
	pendingLoads time.Duration

	mu      sync.Mutex
	recent  []Receipt
	online  bool
	contact time.Time
}

// NewTerminalTill is the Till of t. localMenu, when not nil, is the menu
// of a file (--menu), used while the terminal has none of its own.
func NewTerminalTill(t *terminal.Terminal, localMenu *Menu) *TerminalTill {
	return &TerminalTill{t: t, localMenu: localMenu, pendingLoads: 2 * time.Second, online: true}
}

// Menu implements Till.
func (tt *TerminalTill) Menu() (Menu, bool) {
	// MERGE(i19a): prefer the synced menu:
	//   if m, ok := tt.t.Menu(); ok { return fromMenu(m), true }
	if tt.localMenu != nil {
		return *tt.localMenu, true
	}
	return Menu{}, false
}

// writeLoads writes the card's online top-ups first, as `terminal pay`
// does; offline it gives up quickly and the payment goes on.
func (tt *TerminalTill) writeLoads(ctx context.Context, card terminal.Card) {
	ctx, cancel := context.WithTimeout(ctx, tt.pendingLoads)
	defer cancel()
	_, err := tt.t.WritePendingLoads(ctx, card, tt.t.ConfirmLoad)
	tt.Contact(err)
}

// Pay implements Till: one debit of the basket's total.
func (tt *TerminalTill) Pay(ctx context.Context, card terminal.Card, lines []Line) (Receipt, error) {
	total := Total(lines)
	if total <= 0 {
		return Receipt{}, fmt.Errorf("pos: a payment of %d cents: the basket's total must be positive", total)
	}
	tt.writeLoads(ctx, card)
	// MERGE(i19a): s, err := tt.t.Pay(card, items(lines)) — the signed
	// transaction carries the lines (terminaltx version 2).
	s, err := tt.t.Debit(card, total)
	if err != nil {
		return Receipt{}, err
	}
	r := Receipt{ID: s.ID.String(), Kind: KindPayment, Amount: s.Amount, BalanceAfter: s.BalanceAfter,
		Card: terminaltx.CardHex(s.Card), At: s.Time, Lines: lines}
	tt.add(r)
	return r, nil
}

// ReturnDeposit implements Till.
func (tt *TerminalTill) ReturnDeposit(ctx context.Context, card terminal.Card, lines []Line) (Receipt, error) {
	// MERGE(i19a): the terminal's deposit return (negative lines, a
	// credit through a load).
	return Receipt{}, ErrNotSupported
}

// VoidLast implements Till.
func (tt *TerminalTill) VoidLast(ctx context.Context, card terminal.Card) (Receipt, error) {
	// MERGE(i19a): the terminal's void of its last payment (a credit back,
	// signed and linked to the payment); add its receipt with tt.add.
	return Receipt{}, ErrNotSupported
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

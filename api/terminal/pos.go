package terminal

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/ledger/menu"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
)

// The point of sale (issue 19): the merchant's menu kept for offline use,
// payments with line items, voids and deposit returns. A POS app (such as
// `loopcard terminal ui`) calls these methods.

// MenuFile is the merchant's menu in the state directory, as last fetched.
const MenuFile = "menu.json"

// Errors of the point of sale.
var (
	// ErrNoMenu: the terminal holds no menu (SyncMenu never succeeded).
	ErrNoMenu = errors.New("terminal: no menu: fetch it online (SyncMenu)")
	// ErrNotOnMenu: a basket line names a product the menu does not have,
	// or returns (negative quantity) one that is not a deposit item.
	ErrNotOnMenu = errors.New("terminal: not on the menu")
	// ErrNotAPayment: the basket's total is not positive: a basket of
	// returned deposit items only is a DepositReturn.
	ErrNotAPayment = errors.New("terminal: the basket's total is not positive")
	// ErrNothingToVoid: the queue holds no payment of this card.
	ErrNothingToVoid = errors.New("terminal: no payment of this card to void")
)

// SyncMenu fetches the current menu of the terminal's merchant (GET
// /v1/terminal/menu, signed, with the session key) and keeps it beside the
// queue, so that Menu answers offline. It returns the menu.
func (t *Terminal) SyncMenu(ctx context.Context) (menu.Menu, error) {
	var am apitype.Menu
	if err := t.cl.call(ctx, "GET", "/v1/terminal/menu", nil, &am, true, t.sessionKeyID()); err != nil {
		return menu.Menu{}, fmt.Errorf("terminal: menu: %w", err)
	}
	m := fromAPIMenu(am)
	if m.Merchant != t.id.Merchant {
		return menu.Menu{}, fmt.Errorf("terminal: menu: the server answered merchant %q's menu", m.Merchant)
	}
	if err := menu.Validate(m.Products); err != nil || m.Version <= 0 {
		return menu.Menu{}, fmt.Errorf("terminal: menu: the server's menu does not validate: %w", err)
	}
	if held, ok := t.Menu(); ok && held.Version == m.Version && held.Merchant == m.Merchant {
		return held, nil // kept already
	}
	b, err := json.Marshal(m)
	if err != nil {
		return menu.Menu{}, err
	}
	if err := writeSynced(filepath.Join(t.cfg.StateDir, MenuFile), b); err != nil {
		return menu.Menu{}, fmt.Errorf("terminal: store menu: %w", err)
	}
	t.menuMu.Lock()
	t.menu = &m
	t.menuMu.Unlock()
	t.log.Info("terminal: menu synced", "merchant", m.Merchant, "version", m.Version, "products", len(m.Products))
	return m, nil
}

// Menu returns the menu the terminal holds (as last synced, also from an
// earlier run), and false when it holds none.
func (t *Terminal) Menu() (menu.Menu, bool) {
	t.menuMu.Lock()
	defer t.menuMu.Unlock()
	if t.menu == nil {
		return menu.Menu{}, false
	}
	m := *t.menu
	m.Products = append([]menu.Product(nil), m.Products...)
	return m, true
}

// loadMenu reads the stored menu, if any.
func (t *Terminal) loadMenu() error {
	b, err := os.ReadFile(filepath.Join(t.cfg.StateDir, MenuFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var m menu.Menu
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("terminal: menu file does not parse: %w", err)
	}
	if m.Merchant != t.id.Merchant || menu.Validate(m.Products) != nil {
		return errors.New("terminal: menu file is not this merchant's valid menu")
	}
	t.menuMu.Lock()
	t.menu = &m
	t.menuMu.Unlock()
	return nil
}

func fromAPIMenu(am apitype.Menu) menu.Menu {
	m := menu.Menu{Merchant: am.Merchant, Version: am.Version, Products: make([]menu.Product, len(am.Products))}
	for i, p := range am.Products {
		m.Products[i] = menu.Product(p)
	}
	return m
}

// Line is one line of a basket as the POS takes it: a product of the menu
// and how many; a negative quantity returns deposit items (cups).
type Line struct {
	Product  string
	Quantity int32
}

// Items prices a basket from the menu the terminal holds: each line gets
// its product's price, VAT rate and the menu's version. Lines of one
// product are kept apart, in order. It fails with ErrNoMenu, ErrNotOnMenu
// (an unknown product, or a negative quantity of a product that is not a
// deposit item), or ErrMalformed of terminaltx for a quantity out of range.
func (t *Terminal) Items(lines []Line) ([]terminaltx.Item, error) {
	m, ok := t.Menu()
	if !ok {
		return nil, ErrNoMenu
	}
	if len(lines) == 0 || len(lines) > terminaltx.MaxItems {
		return nil, fmt.Errorf("%w: a basket has 1 to %d lines", terminaltx.ErrMalformed, terminaltx.MaxItems)
	}
	out := make([]terminaltx.Item, len(lines))
	for i, l := range lines {
		p, ok := m.Product(l.Product)
		if !ok {
			return nil, fmt.Errorf("%w: product %q", ErrNotOnMenu, l.Product)
		}
		if l.Quantity < 0 && !p.Deposit {
			return nil, fmt.Errorf("%w: %q is not a deposit item and cannot be returned", ErrNotOnMenu, l.Product)
		}
		if l.Quantity == 0 || l.Quantity > terminaltx.MaxQuantity || l.Quantity < -terminaltx.MaxQuantity {
			return nil, fmt.Errorf("%w: quantity of %q must be 1 to %d (negative for returns)", terminaltx.ErrMalformed, l.Product, terminaltx.MaxQuantity)
		}
		out[i] = terminaltx.Item{Product: p.ID, Quantity: l.Quantity, UnitPrice: p.Price, VATRateBP: p.VATRateBP, MenuVersion: m.Version}
	}
	return out, nil
}

// Pay takes a basket from the card in the field, offline, as Debit does:
// a signed transaction of version 2 carrying the items, whose amount is
// their sum (returned deposit items, with negative quantities, reduce it).
// Items usually come from Items. A basket whose sum is not positive is
// refused with ErrNotAPayment (a return of deposit items only is a
// DepositReturn). Other errors are Debit's.
func (t *Terminal) Pay(card Card, items []terminaltx.Item) (*terminaltx.Signed, error) {
	if len(items) == 0 {
		return nil, fmt.Errorf("%w: no items", ErrNotAPayment)
	}
	for _, it := range items {
		// Bounds first, so that the total cannot overflow.
		if err := validItem(it); err != nil {
			return nil, err
		}
	}
	total := terminaltx.Total(items)
	if total <= 0 {
		return nil, fmt.Errorf("%w: %d", ErrNotAPayment, total)
	}
	return t.debit(card, total, items)
}

func validItem(it terminaltx.Item) error {
	if len(it.Product) == 0 || it.Quantity == 0 || it.Quantity > terminaltx.MaxQuantity || it.Quantity < -terminaltx.MaxQuantity ||
		it.UnitPrice < 0 || it.UnitPrice > 1<<31-1 || it.VATRateBP < 0 || it.VATRateBP > terminaltx.MaxVATRateBP || it.MenuVersion <= 0 {
		return fmt.Errorf("%w: item %q out of range", terminaltx.ErrMalformed, it.Product)
	}
	return nil
}

// Credit is a credit back to a card at the point of sale (a void or a
// deposit return): the pending load the ledger booked, and, when the
// terminal wrote it onto the card in the field, the write.
type Credit struct {
	Load    txid.ID
	Amount  int64
	Payment txid.ID // a void's payment; zero for a deposit return
	// Written is the load as written onto the card; nil when it could not
	// be written now (the card left the reader): the card gets it at its
	// next online tap (WritePendingLoads) or store visit.
	Written *Load
}

// LastPayment returns the newest payment of the card in the terminal's
// queue (committed, uploaded or not), for a void.
func (t *Terminal) LastPayment(card []byte) (*terminaltx.Signed, bool) {
	var last *terminaltx.Signed
	for _, it := range t.queue.Items() {
		if it.Tx.Kind != terminaltx.KindDebit || !bytes.Equal(it.Tx.Card, card) || (it.State != Committed && it.State != Done) {
			continue
		}
		if last == nil || it.Tx.CardSeq > last.CardSeq {
			last = it.Tx
		}
	}
	return last, last != nil
}

// VoidLast voids the last payment of the card in the field, online, while
// the card is still on the reader: it uploads the queue (so the ledger
// has the payment), asks the ledger to void it (POST /v1/terminal/voids:
// the whole amount charged back to the merchant and credited to the card
// as a pending load linked to the payment) and writes that load onto the
// card. The ledger voids a payment only for the terminal that took it,
// while it is the card's last write, within minutes (ledger.VoidWindow),
// and once. Errors: ErrNothingToVoid, an *HTTPError from the API (409 when
// the ledger refuses the void), or card and network failures.
func (t *Terminal) VoidLast(ctx context.Context, card Card) (Credit, error) {
	uid, err := card.UID()
	if err != nil {
		return Credit{}, fmt.Errorf("terminal: card UID: %w", err)
	}
	last, ok := t.LastPayment(uid)
	if !ok {
		return Credit{}, ErrNothingToVoid
	}
	return t.Void(ctx, card, last.ID)
}

// Void voids payment (of the card in the field) as VoidLast does.
func (t *Terminal) Void(ctx context.Context, card Card, payment txid.ID) (Credit, error) {
	if _, err := t.Upload(ctx); err != nil {
		return Credit{}, fmt.Errorf("terminal: void: upload the queue first: %w", err)
	}
	id, err := newID(t)
	if err != nil {
		return Credit{}, err
	}
	var cc apitype.CardCredit
	req := apitype.VoidRequest{ID: id.String(), Payment: payment.String()}
	if err := t.cl.call(ctx, "POST", "/v1/terminal/voids", req, &cc, true, t.sessionKeyID()); err != nil {
		return Credit{}, fmt.Errorf("terminal: void %s: %w", payment, err)
	}
	c := Credit{Load: id, Amount: cc.Amount, Payment: payment}
	t.log.Info("terminal: payment voided", "payment", payment.String(), "load", id.String(), "amount", cc.Amount)
	return t.writeCredit(ctx, card, c)
}

// DepositReturn records deposit items given back at the card in the
// field, nothing bought (a basket whose total is negative: Items with
// negative quantities of deposit products), online: the ledger checks
// them against the merchant's menu (deposit items at their price only),
// charges their deposit back to the merchant and credits the card with a
// pending load (POST /v1/terminal/deposit-returns), which the terminal
// then writes onto the card. Only the negative lines are sent. Errors: an
// *HTTPError from the API (400 for items that are not deposit items at
// their price), or card and network failures.
func (t *Terminal) DepositReturn(ctx context.Context, card Card, items []terminaltx.Item) (Credit, error) {
	uid, err := card.UID()
	if err != nil {
		return Credit{}, fmt.Errorf("terminal: card UID: %w", err)
	}
	var lines []apitype.LineItem
	for _, it := range items {
		if it.Quantity < 0 {
			lines = append(lines, apitype.LineItem(it))
		}
	}
	if len(lines) == 0 {
		return Credit{}, fmt.Errorf("%w: no returned items", terminaltx.ErrMalformed)
	}
	if terminaltx.Total(items) >= 0 {
		return Credit{}, fmt.Errorf("%w: the basket's total is not negative: take it with Pay", terminaltx.ErrMalformed)
	}
	id, err := newID(t)
	if err != nil {
		return Credit{}, err
	}
	var cc apitype.CardCredit
	req := apitype.DepositReturnRequest{ID: id.String(), Card: terminaltx.CardHex(uid), Items: lines}
	if err := t.cl.call(ctx, "POST", "/v1/terminal/deposit-returns", req, &cc, true, t.sessionKeyID()); err != nil {
		return Credit{}, fmt.Errorf("terminal: deposit return: %w", err)
	}
	t.log.Info("terminal: deposit return", "load", id.String(), "amount", cc.Amount)
	return t.writeCredit(ctx, card, Credit{Load: id, Amount: cc.Amount})
}

// writeCredit writes the card's pending loads, the credit's among them.
func (t *Terminal) writeCredit(ctx context.Context, card Card, c Credit) (Credit, error) {
	loads, err := t.WritePendingLoads(ctx, card, t.ConfirmLoad)
	for i := range loads {
		if loads[i].ID == c.Load {
			c.Written = &loads[i]
		}
	}
	if err != nil {
		t.log.Warn("terminal: credit booked but not written onto the card; it is written at the card's next online tap", "load", c.Load.String(), "err", err)
	}
	return c, nil
}

func newID(t *Terminal) (txid.ID, error) {
	var rnd [10]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return txid.ID{}, err
	}
	return txid.New(t.now(), rnd[:]), nil
}

package api

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/menu"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
)

// Menus, voids and deposit returns of the point of sale (issue 19).

func toAPIMenu(m menu.Menu) apitype.Menu {
	out := apitype.Menu{Merchant: m.Merchant, Version: m.Version, Products: make([]apitype.MenuProduct, len(m.Products))}
	for i, p := range m.Products {
		out.Products[i] = apitype.MenuProduct(p)
	}
	return out
}

func (s *Server) setMenu(c *call) error {
	merchant := c.r.PathValue("merchant")
	c.target = "merchant " + merchant
	var req apitype.MenuRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	ps := make([]menu.Product, len(req.Products))
	for i, p := range req.Products {
		ps[i] = menu.Product(p)
	}
	if err := menu.Validate(ps); err != nil {
		return badRequest(err.Error(), err)
	}
	m, err := s.ledger.SetMenu(c.ctx, c.who.org, merchant, ps, c.who.actor())
	if errors.Is(err, ledger.ErrNotFound) {
		return apiError(http.StatusNotFound, "no such merchant: HQ adds it first (loopcard ledger merchant)", err)
	}
	if err != nil {
		return err
	}
	c.detail = "menu version " + strconv.Itoa(int(m.Version))
	return c.reply(http.StatusOK, toAPIMenu(m))
}

func (s *Server) getMenu(c *call) error {
	merchant := c.r.PathValue("merchant")
	c.target = "merchant " + merchant
	m, err := s.ledger.Menu(c.ctx, c.who.org, merchant)
	if errors.Is(err, ledger.ErrNotFound) {
		return apiError(http.StatusNotFound, "the merchant has no menu: set one (loopcard menu set)", err)
	}
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, toAPIMenu(m))
}

func (s *Server) terminalMenu(c *call) error {
	rec, err := s.ledger.Terminal(c.ctx, c.who.org, c.who.terminal)
	if err != nil {
		return err
	}
	m, err := s.ledger.Menu(c.ctx, c.who.org, rec.Merchant)
	if errors.Is(err, ledger.ErrNotFound) {
		return apiError(http.StatusNotFound, "the terminal's merchant has no menu: HQ sets one (loopcard menu set)", err)
	}
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, toAPIMenu(m))
}

func (s *Server) voidPayment(c *call) error {
	var req apitype.VoidRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	id, ok1 := parseUUID(req.ID)
	pay, ok2 := parseUUID(req.Payment)
	if !ok1 || !ok2 {
		return badRequest("id and payment must be UUIDs", nil)
	}
	c.target = "payment " + req.Payment
	v, err := s.ledger.VoidPayment(c.ctx, c.who.org, c.who.terminal, txid.ID(id.Bytes), txid.ID(pay.Bytes))
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return apiError(http.StatusNotFound, "no such payment of this terminal", err)
	case errors.Is(err, ledger.ErrNotPosted):
		return apiError(http.StatusConflict, "the payment is held, not posted: HQ resolves it", err)
	case errors.Is(err, ledger.ErrNotLastPayment):
		return apiError(http.StatusConflict, "the card was written after this payment: only its last payment can be voided; HQ corrects others", err)
	case errors.Is(err, ledger.ErrVoidWindow):
		return apiError(http.StatusConflict, "the payment is too old to void: HQ corrects it", err)
	case errors.Is(err, ledger.ErrExceedsPayment):
		return apiError(http.StatusConflict, "the payment was voided or corrected already", err)
	case err != nil:
		return err
	}
	c.detail = "void " + v.ID.String() + " of " + strconv.FormatInt(v.Amount, 10)
	return c.reply(http.StatusCreated, apitype.CardCredit{Load: v.ID.String(), Card: terminaltx.CardHex(v.Card), Amount: v.Amount,
		Merchant: v.Merchant, Payment: v.Payment.String()})
}

func (s *Server) depositReturn(c *call) error {
	var req apitype.DepositReturnRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	id, ok := parseUUID(req.ID)
	if !ok {
		return badRequest("id must be a UUID", nil)
	}
	card, ok := parseCardID(req.Card)
	if !ok {
		return badRequest("card (hex card id) is required", nil)
	}
	c.target = "card " + terminaltx.CardHex(card)
	if len(req.Items) == 0 || len(req.Items) > terminaltx.MaxItems {
		return badRequest("1 to 64 items are required", nil)
	}
	items := make([]terminaltx.Item, len(req.Items))
	for i, it := range req.Items {
		items[i] = terminaltx.Item(it)
	}
	r, err := s.ledger.DepositReturn(c.ctx, c.who.org, c.who.terminal, ledger.DepositReturnRequest{ID: txid.ID(id.Bytes),
		Card: card, Items: items, Time: s.now()})
	switch {
	case errors.Is(err, ledger.ErrNotDeposit):
		return badRequest("only deposit items of the merchant's menu, at their price, can be returned", err)
	case errors.Is(err, ledger.ErrNotFound):
		return apiError(http.StatusNotFound, "no such card of this organizer", err)
	case err != nil:
		return err
	}
	c.detail = "deposit return " + r.ID.String() + " of " + strconv.FormatInt(r.Amount, 10)
	return c.reply(http.StatusCreated, apitype.CardCredit{Load: r.ID.String(), Card: terminaltx.CardHex(card), Amount: r.Amount, Merchant: r.Merchant})
}

package api

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/input"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/personalize/batch"
)

func (s *Server) sellCard(c *call) error {
	var req apitype.SaleRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	store := c.r.PathValue("store")
	card, ok := parseCardID(req.Card)
	if !ok {
		return badRequest("card (hex card id) and a deposit or credit are required", nil)
	}
	if err := errors.Join(input.AmountOrZero("deposit", req.Deposit), input.AmountOrZero("credit", req.Credit)); err != nil {
		return err
	}
	if req.Deposit+req.Credit == 0 {
		return badRequest("card (hex card id) and a deposit or credit are required", nil)
	}
	c.target = "card " + terminaltx.CardHex(card)
	// The store must hold the card by the custody log: a card of a batch
	// it received and has not sold out (issue 17, M3).
	no, slot, err := s.batches.CardSlot(c.ctx, c.who.org, card)
	if errors.Is(err, batch.ErrNotFound) {
		return apiError(http.StatusConflict, "the card was not personalized in a batch of this organizer: no store holds it, nothing was sold", err)
	}
	if err != nil {
		return err
	}
	sale := ledger.CardSale{ID: c.idem, Store: store, Card: card, Deposit: req.Deposit, Credit: req.Credit, Batch: no, Slot: slot}
	id, err := s.ledger.SellCard(c.ctx, c.who.org, sale)
	if errors.Is(err, ledger.ErrNotInStock) {
		c.detail = fmt.Sprintf("sale refused: store %s does not hold card %d-%05d", store, no, slot)
		return apiError(http.StatusConflict, fmt.Sprintf("store %s does not hold this card by the custody log (it is in another store's run of cards, or the store has no card of batch %d received and unsold): nothing was sold; sell it where it was handed over, or hand it to this store (loopcard handover send, then the store's receipt)", store, no), err)
	}
	if err != nil {
		return err
	}
	c.detail = fmt.Sprintf("sale %s: deposit %d, credit %d", id, req.Deposit, req.Credit)
	out := apitype.MoneyResponse{ID: id.String(), Card: terminaltx.CardHex(card)}
	if req.Credit > 0 {
		out.Amount, out.Load, out.Status = req.Credit, id.String(), "pending"
	}
	return c.reply(http.StatusCreated, out)
}

func (s *Server) closeDay(c *call) error {
	var req apitype.DayCloseRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	store := c.r.PathValue("store")
	day, err := time.Parse(time.DateOnly, req.Day)
	if err != nil {
		return badRequest("day (YYYY-MM-DD) and the counted cash are required", nil)
	}
	if err := input.AmountOrZero("counted", req.Counted); err != nil {
		return err
	}
	c.target = "store " + store + " day " + req.Day
	d, err := s.ledger.CloseStoreDay(c.ctx, c.who.org, store, day, req.Counted)
	if err != nil {
		return err
	}
	c.detail = fmt.Sprintf("expected %d, counted %d", d.Expected, d.Counted)
	return c.reply(http.StatusCreated, apitype.DayCloseResponse{Store: d.Store, Day: d.Day.Format(time.DateOnly),
		Expected: d.Expected, Counted: d.Counted, Difference: d.Difference()})
}

// storeBusinessDay answers the organizer's business day (its time zone,
// day-end hour and the day it is now), which a till's day close and its
// tally of the day's cash count by.
func (s *Server) storeBusinessDay(c *call) error {
	bd, err := s.ledger.BusinessDay(c.ctx, c.who.org)
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, apitype.BusinessDay{TimeZone: bd.ZoneName(), DayEndHour: bd.EndHour,
		Today: bd.Of(s.now()).Format(time.DateOnly)})
}

// storeDays reports every store's business days from ?from= to ?to= (at
// most 92 days; default: the organizer's business day now).
func (s *Server) storeDays(c *call) error {
	days, err := s.daysReport(c)
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, map[string]any{"days": days})
}

// ownStoreDays is one store's days, for its own members (the route chain
// holds a store member to its own store) and HQ: cash expected and
// counted, cards received, sold and in stock.
func (s *Server) ownStoreDays(c *call) error {
	store := c.r.PathValue("store")
	if !terminaltx.ValidID(store) {
		return badRequest("bad store id", nil)
	}
	if err := s.ledger.CheckStore(c.ctx, c.who.org, store); err != nil {
		return err
	}
	all, err := s.daysReport(c)
	if err != nil {
		return err
	}
	days := []ledger.StoreDayReport{}
	for _, d := range all {
		if d.Store == store {
			days = append(days, d)
		}
	}
	return c.reply(http.StatusOK, map[string]any{"days": days})
}

// daysReport is the organizer's store days from the query's from and to
// (YYYY-MM-DD; default today, at most 92 days).
func (s *Server) daysReport(c *call) ([]ledger.StoreDayReport, error) {
	bd, err := s.ledger.BusinessDay(c.ctx, c.who.org)
	if err != nil {
		return nil, err
	}
	today := bd.Of(s.now())
	from, to := today, today
	if v := c.r.URL.Query().Get("from"); v != "" {
		if from, err = time.Parse(time.DateOnly, v); err != nil {
			return nil, badRequest("from must be YYYY-MM-DD", nil)
		}
	}
	if v := c.r.URL.Query().Get("to"); v != "" {
		if to, err = time.Parse(time.DateOnly, v); err != nil {
			return nil, badRequest("to must be YYYY-MM-DD", nil)
		}
	}
	if to.Before(from) || to.Sub(from) > 92*24*time.Hour {
		return nil, badRequest("from must not be after to, at most 92 days apart", nil)
	}
	days, err := s.ledger.StoreDays(c.ctx, c.who.org, from, to)
	if err != nil {
		return nil, err
	}
	if days == nil {
		days = []ledger.StoreDayReport{}
	}
	return days, nil
}

func (s *Server) eventReport(c *call) error {
	event := c.r.PathValue("event")
	if !terminaltx.ValidID(event) {
		return badRequest("bad event id", nil)
	}
	r, err := s.ledger.Event(c.ctx, c.who.org, event)
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, r)
}

// productReport reports ?event='s sales by product, merchant and business
// day, of one business day with ?day=YYYY-MM-DD.
func (s *Server) productReport(c *call) error {
	q := c.r.URL.Query()
	event := q.Get("event")
	if !terminaltx.ValidID(event) {
		return badRequest("event (an event id) is required", nil)
	}
	var day time.Time
	if v := q.Get("day"); v != "" {
		var err error
		if day, err = time.Parse(time.DateOnly, v); err != nil {
			return badRequest("day must be YYYY-MM-DD", nil)
		}
	}
	r, err := s.ledger.Products(c.ctx, c.who.org, event, day)
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, r)
}

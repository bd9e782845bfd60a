package runbook

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// storeFlags are the store client's flags for a store of this run.
func (r *runner) storeFlags(store string) []string {
	return append([]string{"--store", store, "--state", r.storeDir(store, "client"), "--token-file", r.storeDir(store, "token")}, r.orgFlag()...)
}

// sell: each store sells all but one of its cards, taking the deposit and
// the credit in cash; the store client writes the credit onto the card and
// confirms it, and records the sale in the custody log.
func (r *runner) sell(ctx context.Context) error {
	for _, st := range []string{StoreN, StoreS} {
		cards := r.storeCards[st]
		d := r.storeDay(st)
		for _, c := range cards[:len(cards)-1] { // one stays in stock
			vc, err := r.present(ctx, c, 0)
			if err != nil {
				return err
			}
			var res struct {
				Write *struct {
					After int64 `json:"after"`
				} `json:"write"`
				Number string `json:"number"`
			}
			err = r.loopcardJSON(ctx, &res, append([]string{"store", "sell", "--reader", r.readers[0],
				"--deposit", strconv.Itoa(Deposit), "--credit", strconv.Itoa(Credit), "--key-file", r.storeDir(st, "store.key")}, r.storeFlags(st)...)...)
			if serr := r.remove(vc); err == nil {
				err = serr
			}
			if err != nil {
				return err
			}
			if res.Write == nil || res.Write.After != Credit || res.Number != c.number {
				return fmt.Errorf("the sale of %s did not write %s onto it", c.number, money(Credit))
			}
			c.sold = true
			d.CashCounted += Deposit + Credit
		}
		r.say("   %s sold %d cards: %s deposit and %s credit in cash each, the credit written onto the card and confirmed, each sale in the custody log",
			st, len(cards)-1, money(Deposit), money(Credit))
	}
	for _, c := range r.cards {
		if c.sold {
			r.sum.CardsSold++
		}
	}
	return nil
}

func (r *runner) storeDay(st string) *StoreDay {
	for i := range r.sum.Stores {
		if r.sum.Stores[i].Store == st {
			return &r.sum.Stores[i]
		}
	}
	r.sum.Stores = append(r.sum.Stores, StoreDay{Store: st})
	return &r.sum.Stores[len(r.sum.Stores)-1]
}

// terminalRun is a terminal that runs `terminal pay` all through the step,
// as a bar's terminal does, on one reader slot.
type terminalRun struct {
	id, merchant string
	slot         int
	state        string
	pay          *proc
	taps         int // presentations so far
	stat         *TerminalStat
}

var paidLine = regexp.MustCompile(`^paid (\d+)\.(\d\d): card ([0-9A-F]+) sequence (\d+), balance (-?\d+)\.(\d\d)$`)

func (r *runner) terminal(ctx context.Context, id, merchant string, slot int) (*terminalRun, error) {
	tokenFile := r.path("terminals", id+".token")
	if _, err := r.loopcard(ctx, append([]string{"terminal", "register", "--terminal", id, "--merchant", merchant, "--event", Event,
		"--out", tokenFile}, r.orgFlag()...)...); err != nil {
		return nil, err
	}
	t := &terminalRun{id: id, merchant: merchant, slot: slot, state: r.path("terminals", id)}
	if _, err := r.loopcard(ctx, append([]string{"terminal", "enrol", "--terminal", id, "--token-file", tokenFile, "--state", t.state}, r.orgFlag()...)...); err != nil {
		return nil, err
	}
	t.stat = &TerminalStat{ID: id, Merchant: merchant}
	r.sum.Terminals = append(r.sum.Terminals, t.stat)
	return t, nil
}

// open starts the terminal taking payments of amount until stopped.
func (r *runner) openTerminal(ctx context.Context, t *terminalRun, amount int64) error {
	p, err := r.background(ctx, t.id, "terminal", "pay", "--state", t.state, "--reader", r.readers[t.slot],
		"--amount", strconv.FormatInt(amount, 10), "--count", "0")
	if err != nil {
		return err
	}
	t.pay, t.taps = p, 0
	_, err = p.waitFor(ctx, "present a card", waitLong)
	return err
}

// tap presents c at the terminal and returns what the terminal printed
// about it: "paid ..." or "declined: ...".
func (r *runner) tap(ctx context.Context, t *terminalRun, c *card) (string, error) {
	vc, err := r.present(ctx, c, t.slot)
	if err != nil {
		return "", err
	}
	t.taps++
	line, err := t.pay.waitNth(ctx, t.taps, waitLong, "paid ", "declined: ")
	if serr := r.remove(vc); err == nil {
		err = serr
	}
	if err != nil {
		return "", err
	}
	if m := paidLine.FindStringSubmatch(line); m != nil {
		t.stat.Taken++
		a, _ := strconv.ParseInt(m[1]+m[2], 10, 64)
		t.stat.Amount += a
		r.sum.Taken++
	} else {
		t.stat.Declined++
	}
	return line, nil
}

// closeTerminal stops `terminal pay` and uploads what is left.
func (r *runner) closeTerminal(ctx context.Context, t *terminalRun) (string, error) {
	if err := t.pay.stop(); err != nil {
		return "", err
	}
	return r.loopcard(ctx, "terminal", "upload", "--state", t.state)
}

func (r *runner) pay(ctx context.Context) error {
	bar, err := r.terminal(ctx, "bar-1", Bar, 0)
	if err != nil {
		return err
	}
	food, err := r.terminal(ctx, "food-1", Food, 1)
	if err != nil {
		return err
	}
	r.bar, r.food = bar, food
	r.say("   HQ registered bar-1 (merchant %s) and food-1 (merchant %s); each enrolled with its one-time token file", Bar, Food)
	var payers []*card
	for _, c := range r.cards {
		if c.sold {
			payers = append(payers, c)
		}
	}
	// The clone victim and the card topped up online stay out of the
	// random payments, so their stories read clearly.
	r.victim, r.online = payers[0], payers[1]
	r.victim.cloned, r.online.toppedUp = true, true
	payers = payers[2:]
	for _, t := range []*terminalRun{bar, food} {
		amount := int64(150 + 50*r.rng.IntN(6))
		if err := r.openTerminal(ctx, t, amount); err != nil {
			return err
		}
		for range r.cfg.Taps {
			c := payers[r.rng.IntN(len(payers))]
			if _, err := r.tap(ctx, t, c); err != nil {
				return err
			}
		}
		r.say("   %s took %d payments of %s from cards presented at %q (%d declined), offline from its queue",
			t.id, t.stat.Taken, money(amount), r.readers[t.slot], t.stat.Declined)
	}
	return nil
}

// clone copies a card byte for byte and spends original and copy at the
// two terminals: the ledger sees one card sequence twice.
func (r *runner) clone(ctx context.Context) error {
	v := r.victim
	b, err := os.ReadFile(v.state)
	if err != nil {
		return err
	}
	copyOf := &card{state: r.path("cards", "clone-of-"+strings.TrimSuffix(v.state[strings.LastIndexByte(v.state, '/')+1:], ".json")+".json"),
		uid: v.uid, number: v.number}
	if err := os.WriteFile(copyOf.state, b, 0o600); err != nil {
		return err
	}
	r.say("   card %s copied byte for byte, keys included, onto a second card (%s)", v.number, copyOf.state)
	for _, p := range []struct {
		t *terminalRun
		c *card
	}{{r.bar, v}, {r.food, copyOf}} {
		line, err := r.tap(ctx, p.t, p.c)
		if err != nil {
			return err
		}
		r.say("   %s, %s: %s", p.t.id, map[bool]string{true: "the original", false: "the copy"}[p.c == v], line)
	}
	for _, t := range []*terminalRun{r.bar, r.food} {
		out, err := r.closeTerminal(ctx, t)
		if err != nil {
			return err
		}
		r.say("   %s: %s", t.id, strings.TrimSpace(out))
	}
	var alerts []struct {
		Card, Kind, Detail string
	}
	if err := r.loopcardJSON(ctx, &alerts, append([]string{"ledger", "alerts"}, r.orgFlag()...)...); err != nil {
		return err
	}
	h, err := r.cardholder()
	if err != nil {
		return err
	}
	var st cardStatus
	if err := h.api(ctx, "GET", "/v1/card", v.token, "", nil, &st); err != nil {
		return err
	}
	r.sum.Clone = CloneCheck{Number: v.number, Status: st.Status, Blocked: st.Status == "blocked"}
	for _, a := range alerts {
		if strings.EqualFold(a.Card, v.uid) && a.Kind == "clone" {
			r.sum.Clone.Alert = a.Kind
		}
	}
	r.say("   the ledger sees one card sequence twice: alert %q, card %s", r.sum.Clone.Alert, st.Status)
	if !r.sum.Clone.Blocked || r.sum.Clone.Alert == "" {
		return errors.New("the clone was not caught")
	}
	return nil
}

// onlineTopUp: the cardholder tops up through the card page and the test
// provider; the credit is a pending load until the next tap at an online
// terminal writes it; then the card page, in Chromium, shows what the card
// holds.
func (r *runner) onlineTopUp(ctx context.Context) error {
	c := r.online
	h, err := r.cardholder()
	if err != nil {
		return err
	}
	if _, err := h.topUp(ctx, c.token, TopUp); err != nil {
		return err
	}
	var st cardStatus
	if err := h.api(ctx, "GET", "/v1/card", c.token, "", nil, &st); err != nil {
		return err
	}
	o := OnlineTopUp{Number: c.number, Amount: TopUp, PendingBefore: st.Pending}
	r.say("   the holder of %s opens the card page from its QR code and pays %s at the test provider: %s pending, not on the card yet",
		c.number, money(TopUp), money(st.Pending))
	if err := r.openTerminal(ctx, r.bar, 300); err != nil {
		return err
	}
	line, err := r.tap(ctx, r.bar, c)
	if err != nil {
		return err
	}
	if _, err := r.closeTerminal(ctx, r.bar); err != nil {
		return err
	}
	if !strings.Contains(r.bar.pay.stdout(), "onto the card (online top-up)") {
		return fmt.Errorf("bar-1 did not write the pending load: %s", line)
	}
	m := paidLine.FindStringSubmatch(line)
	if m == nil {
		return fmt.Errorf("bar-1: %s", line)
	}
	o.CardBalance, _ = strconv.ParseInt(m[5]+m[6], 10, 64)
	if err := h.api(ctx, "GET", "/v1/card", c.token, "", nil, &st); err != nil {
		return err
	}
	o.LedgerBalance = st.Balance
	r.sum.Online = o
	r.say("   at its next tap bar-1 fetches the card's credit key for this one load, writes it, then takes 3.00: card %s, ledger %s",
		money(o.CardBalance), money(o.LedgerBalance))
	shot := r.path("out", "card-page.png")
	text, err := r.openCardPage(ctx, c, shot)
	if errors.Is(err, ErrNoChromium) && !r.cfg.RequireBrowser {
		r.say("   (the card page was not opened: %v)", err)
		return nil
	}
	if err != nil {
		return err
	}
	want := "€" + money(o.CardBalance)
	r.sum.Online.PageShows = strings.Contains(text, want)
	r.sum.Files["card_page"] = shot
	r.say("   the card page in Chromium shows %s: %v (screenshot %s)", want, r.sum.Online.PageShows, shot)
	if !r.sum.Online.PageShows {
		return fmt.Errorf("the card page does not show %s:\n%s", want, text)
	}
	return nil
}

// check reads every card at the store's reader and compares it with the
// ledger.
func (r *runner) check(ctx context.Context) error {
	for _, c := range r.cards {
		vc, err := r.present(ctx, c, 0)
		if err != nil {
			return err
		}
		var b struct {
			OnCard  int64 `json:"on_card"`
			Ledger  int64 `json:"ledger"`
			Pending int64 `json:"pending"`
		}
		err = r.loopcardJSON(ctx, &b, append([]string{"store", "balance", "--reader", r.readers[0]}, r.storeFlags(StoreN)...)...)
		if serr := r.remove(vc); err == nil {
			err = serr
		}
		if err != nil {
			return err
		}
		r.sum.Cards = append(r.sum.Cards, CardCheck{Number: c.number, CardBalance: b.OnCard, LedgerBalance: b.Ledger,
			Pending: b.Pending, Refunded: c.refunded})
	}
	var v struct {
		OK bool `json:"ok"`
	}
	if err := r.loopcardJSON(ctx, &v, "ledger", "verify"); err != nil {
		return err
	}
	var rep struct {
		Sales []struct {
			Count int `json:"count"`
		} `json:"sales"`
		Held int `json:"held_transactions"`
	}
	if err := r.loopcardJSON(ctx, &rep, append([]string{"report", "event", "--event", Event}, r.orgFlag()...)...); err != nil {
		return err
	}
	for _, s := range rep.Sales {
		r.sum.Ledger.Posted += s.Count
	}
	r.sum.Ledger.Held = rep.Held
	r.sum.Ledger.Verified = v.OK
	r.sum.Counted = r.sum.Ledger.Posted + r.sum.Ledger.Held
	r.say("   %d cards read at the store's reader: every balance on a card equals the ledger's (a refunded card still holds what was paid back): %v",
		len(r.sum.Cards), r.sum.Agree())
	r.say("   ledger verified (every entry balances, the accounts sum to zero): %v; %d payments taken at terminals, %d recorded (%d posted, %d held)",
		v.OK, r.sum.Taken, r.sum.Counted, r.sum.Ledger.Posted, r.sum.Ledger.Held)
	if !r.sum.Agree() || !v.OK || r.sum.Taken != r.sum.Counted {
		return errors.New("the cards and the ledger do not agree")
	}
	return nil
}

// The auto top-up the runbook's cardholder sets: reload 50.00 when the
// balance is below 50.00, at most 50.00 a day (choices of the profile's
// page).
const (
	AutoAmount    = 5000
	AutoThreshold = 5000
	AutoLimit     = 5000
)

// autoTopUp: the holder of the card topped up online claims it for a
// profile on the card page, sets an auto top-up there and saves a (test)
// payment method at the test provider; at the card's next tap, bar-1
// online sees it below the threshold: the API charges the saved method
// server-side and the load comes with the tap's pending loads, written
// onto the card at that same tap; the profile's page lists the charge.
func (r *runner) autoTopUp(ctx context.Context) error {
	c := r.online
	h, err := r.cardholder()
	if err != nil {
		return err
	}
	if _, err := h.claim(ctx, c, "holder@example.org", "a long enough password"); err != nil {
		return fmt.Errorf("claim: %w", err)
	}
	back, err := h.setAutoTopUp(ctx, c, AutoAmount, AutoThreshold, AutoLimit)
	if err != nil {
		return fmt.Errorf("auto top-up: %w", err)
	}
	if !strings.Contains(back, "Auto top-up turns on") {
		return errors.New("the profile's page did not come back from the provider's page")
	}
	a := AutoTopUp{Number: c.number, Amount: AutoAmount, Threshold: AutoThreshold, Before: r.sum.Online.CardBalance}
	r.say("   the holder of %s claims it for a profile and sets an auto top-up: %s when the balance is below %s, at most %s a day; the test provider saves a payment method (Loopcard keeps its ids only)",
		c.number, money(AutoAmount), money(AutoThreshold), money(AutoLimit))
	if err := r.openTerminal(ctx, r.bar, 300); err != nil {
		return err
	}
	line, err := r.tap(ctx, r.bar, c)
	if err != nil {
		return err
	}
	if _, err := r.closeTerminal(ctx, r.bar); err != nil {
		return err
	}
	out := r.bar.pay.stdout()
	if !strings.Contains(out, "onto the card (online top-up)") {
		return fmt.Errorf("bar-1 did not write the auto top-up at the tap: %s", line)
	}
	m := paidLine.FindStringSubmatch(line)
	if m == nil {
		return fmt.Errorf("bar-1: %s", line)
	}
	a.CardBalance, _ = strconv.ParseInt(m[5]+m[6], 10, 64)
	var st cardStatus
	if err := h.api(ctx, "GET", "/v1/card", c.token, "", nil, &st); err != nil {
		return err
	}
	a.LedgerBalance = st.Balance
	if a.CardBalance != a.Before+AutoAmount-300 || a.LedgerBalance != a.CardBalance {
		return fmt.Errorf("after the auto top-up the card holds %s and the ledger %s; want %s", money(a.CardBalance), money(a.LedgerBalance),
			money(a.Before+AutoAmount-300))
	}
	page, _, err := h.page(ctx, "GET", h.base+"/account", nil)
	if err != nil {
		return err
	}
	if i := strings.Index(page, "Auto top-up charges"); i >= 0 {
		table := page[i:]
		if j := strings.Index(table, "</table>"); j >= 0 {
			table = table[:j]
		}
		a.Charges = strings.Count(table, "<tr><td>")
		a.PageShowsCharge = strings.Contains(table, "<td>paid</td>")
	}
	r.sum.Auto = a
	r.say("   bar-1, online, sees the card at %s, below %s: the API charges the saved method and the load is written at that same tap, then 3.00 taken: card %s, ledger %s; the profile's page lists the charge as paid: %v",
		money(a.Before), money(AutoThreshold), money(a.CardBalance), money(a.LedgerBalance), a.PageShowsCharge)
	if !a.PageShowsCharge {
		return errors.New("the profile's page does not list the auto top-up's charge as paid")
	}
	return nil
}

package runbook

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// refund: a cardholder asks for the balance with the QR token and PIN (as
// the card page does); HQ exports the due refunds as a SEPA file, which
// fixes their amounts.
func (r *runner) refund(ctx context.Context) error {
	var c *card
	for _, x := range r.cards {
		if x.sold && !x.cloned && !x.toppedUp {
			c = x
			break
		}
	}
	if c == nil {
		return errors.New("no card to refund")
	}
	h, err := r.cardholder()
	if err != nil {
		return err
	}
	var res struct {
		Credit int64  `json:"credit"`
		Status string `json:"status"`
	}
	if err := h.api(ctx, "POST", "/v1/card/refund", c.token, c.pin,
		map[string]string{"name": "Alex Example", "iban": "DE89370400440532013000"}, &res); err != nil {
		return err
	}
	r.say("   the holder of %s asks for its balance with the QR code and PIN: the card holds %s, refund %s", c.number, money(res.Credit), res.Status)
	// The amount is fixed at payout. By default a refund waits until every
	// terminal of its event has uploaded since the request (or 24 h): the
	// demo's terminals have sent every payment already, so HQ pays at once.
	// HQ reviews the run first (a dry run prints its lines and plan),
	// then books exactly that plan.
	file := r.path("out", "payout.xml")
	payout := append([]string{"ledger", "payout", "--debtor-name", "Summer Fest Ltd",
		"--debtor-iban", "NL91ABNA0417164300", "--sync-window", "0s"}, r.orgFlag()...)
	var plan struct {
		Plan string `json:"plan"`
	}
	if err := r.loopcardJSON(ctx, &plan, append(payout, "--dry-run")...); err != nil {
		return err
	}
	if plan.Plan == "" {
		return errors.New("payout dry run: no plan")
	}
	if _, err := r.loopcard(ctx, append(payout, "--approve", plan.Plan, "--out", file)...); err != nil {
		return err
	}
	n, total, err := readPain001(file)
	if err != nil {
		return err
	}
	if total != res.Credit {
		return fmt.Errorf("the payout file pays %s, the card held %s", money(total), money(res.Credit))
	}
	c.refunded = total
	r.sum.Refund = RefundCheck{Number: c.number, Amount: total, Payout: file, Refunds: n}
	r.sum.Files["payout"] = file
	r.say("   HQ pays the refunds out (--sync-window 0s: every terminal has uploaded), fixing their amounts, as a SEPA credit transfer (pain.001): %d payment of %s in %s",
		n, money(total), file)
	return nil
}

// readPain001 reads the number of transactions and their sum from a
// pain.001 file's group header.
func readPain001(path string) (int, int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	var doc struct {
		Hdr struct {
			N   int    `xml:"NbOfTxs"`
			Sum string `xml:"CtrlSum"`
		} `xml:"CstmrCdtTrfInitn>GrpHdr"`
	}
	if err := xml.Unmarshal(b, &doc); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", path, err)
	}
	f, err := strconv.ParseFloat(doc.Hdr.Sum, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: control sum %q", path, doc.Hdr.Sum)
	}
	// The control sum is a decimal in euros with two places.
	return doc.Hdr.N, int64(f*100 + 0.5), nil
}

func (r *runner) closeDay(ctx context.Context) error {
	// Without --day and --from, the organizer's business day now.
	for i := range r.sum.Stores {
		d := &r.sum.Stores[i]
		var res struct {
			Expected int64 `json:"expected_cash"`
			Counted  int64 `json:"counted_cash"`
			Diff     int64 `json:"difference"`
		}
		if err := r.loopcardJSON(ctx, &res, append([]string{"ledger", "close-day", "--store", d.Store,
			"--counted", strconv.FormatInt(d.CashCounted, 10)}, r.orgFlag()...)...); err != nil {
			return err
		}
		d.CashExpected, d.Balanced = res.Expected, res.Diff == 0
	}
	var days []struct {
		Store    string `json:"store"`
		Received int    `json:"cards_received"`
		Sold     int    `json:"cards_sold"`
		InStock  int    `json:"cards_in_stock"`
	}
	if err := r.loopcardJSON(ctx, &days, append([]string{"report", "stores"}, r.orgFlag()...)...); err != nil {
		return err
	}
	for i := range r.sum.Stores {
		d := &r.sum.Stores[i]
		for _, rd := range days {
			if rd.Store == d.Store {
				d.Received, d.Sold, d.InStock = rd.Received, rd.Sold, rd.InStock
			}
		}
		r.say("   %s: received %d, sold %d, in stock %d; cash expected by the ledger %s, counted %s: %s",
			d.Store, d.Received, d.Sold, d.InStock, money(d.CashExpected), money(d.CashCounted), map[bool]string{true: "balanced", false: "DIFFERENCE"}[d.Balanced])
	}
	return nil
}

func (r *runner) audit(ctx context.Context) error {
	// The auditor pinned HQ's key once, out of band.
	vkey, err := r.loopcard(ctx, append([]string{"audit", "hq-key"}, r.orgFlag()...)...)
	if err != nil {
		return err
	}
	pinned := r.path("out", "hq.vkey")
	if err := os.WriteFile(pinned, []byte(vkey), 0o644); err != nil {
		return err
	}
	dir := r.path("out", "audit-export")
	var ex struct {
		Entries int64 `json:"entries"`
	}
	if err := r.loopcardJSON(ctx, &ex, append([]string{"audit", "export", "--out", dir}, r.orgFlag()...)...); err != nil {
		return err
	}
	var rep struct {
		OK      bool  `json:"ok"`
		Entries int64 `json:"entries"`
		Pinned  bool  `json:"hq_key_pinned"`
	}
	out, verr := r.loopcard(ctx, "audit", "verify", dir, "--hq-key", pinned, "--json")
	if err := os.WriteFile(r.path("out", "audit-report.json"), []byte(out), 0o644); err != nil {
		return err
	}
	if verr != nil {
		return verr
	}
	if err := jsonUnmarshal(out, &rep); err != nil {
		return err
	}
	r.sum.Audit = AuditCheck{Entries: rep.Entries, Verified: rep.OK && rep.Pinned}
	r.sum.Files["audit_export"], r.sum.Files["audit_report"] = dir, r.path("out", "audit-report.json")
	r.say("   %d log entries exported to %s and verified offline against the pinned hq-sign key: ok", rep.Entries, dir)
	return nil
}

package api_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/api/console/consoletest"
	"github.com/loopcard/loopcard/ledger"
)

// consoleBoothMatrix is TestConsoleRoleMatrix's part for the info booth's
// pages (issue 21): corrections (the list, one issued for a payment,
// approval) and vouchers (the batches, one issued). Each role gets what
// the API's role matrix gives it, a refused action changes nothing, and
// what hq does is audited under the staff member's name. Then a
// correction above the threshold, issued from a card's history by one hq
// person, is approved by another and refused to the first; a batch's codes
// are shown once, or downloaded as a file, and reach no audit record.
func consoleBoothMatrix(t *testing.T, e *env, users map[string]staffUser) {
	ctx := context.Background()
	term := e.enrolTerminal("t-booth")
	card := e.cards[2]
	res, err := e.ledger.Upload(ctx, org, [][]byte{e.debit(term, card, 1, e.balance(card), 300)})
	require.NoError(t, err)
	require.Equal(t, ledger.Accepted, res[0].Status)
	payment := res[0].ID
	require.NoError(t, e.ledger.SetCorrectionThreshold(ctx, org, 50))
	waiting, err := e.ledger.RequestCorrection(ctx, org, ledger.CorrectionRequest{Payment: payment, Amount: 100, Reason: "asked at the desk",
		Actor: "hq:1:staff:setup"})
	require.NoError(t, err)
	require.Equal(t, ledger.CorrectionAwaitingApproval, waiting.Status)
	tomorrow := e.clock.Now().UTC().AddDate(0, 0, 1).Format(time.DateOnly)

	type action struct {
		name, method, path string
		form               url.Values
	}
	actions := []action{
		{"corrections", "GET", "/console/corrections", nil},
		{"correct", "POST", "/console/corrections", url.Values{"payment": {payment.String()}, "amount": {"0.30"}, "reason": {"one too many"}}},
		{"approve", "POST", "/console/corrections/" + waiting.ID.String() + "/approve", url.Values{}},
		{"vouchers", "GET", "/console/vouchers", nil},
		{"issue vouchers", "POST", "/console/vouchers", url.Values{"event": {"fest"}, "amount": {"2.50"}, "count": {"2"}, "expires": {tomorrow}, "label": {"crew drinks"}}},
	}
	want := map[string][]int{
		"anonymous": {303, 401, 401, 303, 401},
		"store":     {403, 403, 403, 403, 403},
		"auditor":   {200, 403, 403, 200, 403},
		"other":     {200, 404, 404, 200, 404},
		"hq":        {200, 303, 303, 200, 201},
	}
	merchant := func() int64 {
		bal, err := e.ledger.Balance(ctx, org, ledger.Merchant, "bar")
		require.NoError(t, err)
		return bal
	}
	for _, role := range []string{"anonymous", "store", "auditor", "other", "hq"} {
		b := e.consoleBrowser()
		if u, ok := users[role]; ok {
			if u.secret != "" {
				e.clock.Add(30 * time.Second)
			}
			b.signedIn(u)
		} else {
			b.get("/console/login")
		}
		bar := merchant()
		for i, a := range actions {
			var r response
			if a.method == "GET" {
				r = b.get(a.path)
			} else {
				form := url.Values{}
				for k, v := range a.form {
					form[k] = v
				}
				if a.name == "correct" {
					form.Set("idem", newIdem())
				}
				r = b.post(a.path, form, nil)
			}
			require.Equal(t, want[role][i], r.status, "%s %s: %s", role, a.name, r.body)
			if r.status == http.StatusForbidden {
				require.Contains(t, string(r.body), "Your role may not do this.", "%s %s", role, a.name)
			}
		}
		if role != "hq" {
			require.Equal(t, bar, merchant(), "%s charged nothing back", role)
			cs, err := e.ledger.Corrections(ctx, org)
			require.NoError(t, err)
			require.Len(t, cs, 1, role)
			bs, err := e.ledger.VoucherBatches(ctx, org)
			require.NoError(t, err)
			require.Empty(t, bs, role)
		}
	}
	require.Equal(t, 1, e.auditCount(`action = 'POST /v1/hq/corrections' AND outcome = 'ok' AND actor = 'hq:1:staff:alice'`))
	require.Equal(t, 1, e.auditCount(`action = 'POST /v1/hq/corrections/{correction}/approve' AND outcome = 'ok' AND actor = 'hq:1:staff:alice'`))
	require.Equal(t, 1, e.auditCount(`action = 'POST /v1/hq/vouchers' AND outcome = 'ok' AND actor = 'hq:1:staff:alice'`))
	require.Equal(t, 1, e.auditCount(`action = 'POST /v1/hq/corrections' AND outcome = 'denied' AND actor = 'auditor:1:staff:audrey'`))
	require.Equal(t, 1, e.auditCount(`action = 'POST /v1/hq/vouchers' AND outcome = 'denied' AND actor = 'store:1:staff:sam'`))

	// A second hq person; alice issues a correction above the threshold
	// from the card's history, and only bob may approve it.
	bob := e.addStaff(org, "bob", api.RoleHQ, "")
	e.clock.Add(30 * time.Second)
	alice := e.consoleBrowser().signedIn(users["hq"])
	r := alice.get("/console/cards?card=" + card.hex())
	require.Equal(t, http.StatusOK, r.status)
	link := regexp.MustCompile(`href="(/console/corrections\?payment=[0-9a-f-]{36}&amp;card=[0-9A-Fa-f]+)"`).FindStringSubmatch(string(r.body))
	require.NotNil(t, link, "a payment of the card's history offers a correction: %s", r.body)
	r = alice.get(strings.ReplaceAll(link[1], "&amp;", "&"))
	require.Equal(t, http.StatusOK, r.status)
	require.Contains(t, string(r.body), `value="`+payment.String()+`"`, "the form names the payment")
	idem := regexp.MustCompile(`name="idem" value="([0-9a-f-]{36})"`).FindStringSubmatch(string(r.body))
	require.NotNil(t, idem)
	form := url.Values{"payment": {payment.String()}, "amount": {"1,20"}, "reason": {"the round was refused"}, "idem": {idem[1]}}
	r = alice.post("/console/corrections", form, nil)
	require.Equal(t, http.StatusSeeOther, r.status, string(r.body))
	require.Equal(t, "/console/corrections?done=approval", r.header.Get("Location"))
	r = alice.post("/console/corrections", form, nil)
	require.Equal(t, http.StatusSeeOther, r.status, "the same form again is the same correction")
	cs, err := e.ledger.Corrections(ctx, org)
	require.NoError(t, err)
	require.Len(t, cs, 3)
	big := cs[0]
	require.Equal(t, int64(120), big.Amount)
	require.Equal(t, ledger.CorrectionAwaitingApproval, big.Status)
	// Beyond the payment: refused, nothing changed.
	r = alice.post("/console/corrections", url.Values{"payment": {payment.String()}, "amount": {"5"}, "reason": {"too much"}, "idem": {newIdem()}}, nil)
	require.Equal(t, http.StatusConflict, r.status)
	require.Contains(t, string(r.body), "the payment&#39;s corrections would exceed it")
	r = alice.post("/console/corrections", url.Values{"payment": {payment.String()}, "amount": {"-1"}, "reason": {"bad"}, "idem": {newIdem()}}, nil)
	require.Equal(t, http.StatusBadRequest, r.status)
	bar := merchant()
	r = alice.post("/console/corrections/"+big.ID.String()+"/approve", url.Values{}, nil)
	require.Equal(t, http.StatusForbidden, r.status)
	require.Contains(t, string(r.body), "approved by another HQ person than who asked for it")
	require.Equal(t, bar, merchant())
	e.clock.Add(30 * time.Second)
	bb := e.consoleBrowser().signedIn(bob)
	r = bb.get("/console/corrections")
	require.Contains(t, string(r.body), `/console/corrections/`+big.ID.String()+`/approve"`)
	r = bb.post("/console/corrections/"+big.ID.String()+"/approve", url.Values{}, nil)
	require.Equal(t, http.StatusSeeOther, r.status, string(r.body))
	require.Equal(t, bar-120, merchant(), "charged back once approved")
	require.Equal(t, 1, e.auditCount(`action = 'POST /v1/hq/corrections/{correction}/approve' AND outcome = 'ok' AND actor = 'hq:1:staff:bob'`))

	// Vouchers: the codes once on the page, or as a file; never in the audit.
	r = bb.post("/console/vouchers", url.Values{"event": {"fest"}, "amount": {"5"}, "count": {"3"}, "expires": {tomorrow}, "label": {"welcome"}, "as": {"file"}}, nil)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	require.Contains(t, r.header.Get("Content-Disposition"), "attachment")
	codes := regexp.MustCompile(`(?m)^[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}$`).FindAllString(string(r.body), -1)
	require.Len(t, codes, 3)
	r = bb.get("/console/vouchers")
	require.Equal(t, http.StatusOK, r.status)
	require.Contains(t, string(r.body), "welcome")
	for _, c := range codes {
		require.NotContains(t, string(r.body), c, "a code is shown once")
		require.Zero(t, e.auditCount(`detail LIKE '%' || $1 || '%' OR target LIKE '%' || $1 || '%'`, c))
	}
	r = bb.post("/console/vouchers", url.Values{"event": {"fest"}, "amount": {"0"}, "count": {"3"}, "expires": {tomorrow}}, nil)
	require.Equal(t, http.StatusBadRequest, r.status)
	bs, err := e.ledger.VoucherBatches(ctx, org)
	require.NoError(t, err)
	require.Len(t, bs, 2)
}

// consoleBoothBrowser is TestConsoleBrowser's part for the info booth's
// pages: hq corrects a payment from the card's history (above the
// threshold, so it waits for another person), issues a batch of vouchers
// whose codes the page shows once, and sees both pages in Dutch; each page
// photographed and checked by axe-core.
func consoleBoothBrowser(t *testing.T, e *env, b *consoletest.Tab) {
	require.NoError(t, e.ledger.SetCorrectionThreshold(context.Background(), org, 100))
	b.Open("/console/cards?card=" + e.cards[1].hex())
	b.Submit(`a[href^="/console/corrections?payment="]`)
	b.Page("correction-form", "Correct a payment", "Payment (transaction id")
	b.Fill("#amount", "2.50")
	b.Fill("#reason", "the round was refused")
	b.Submit(`form[action="/console/corrections"] button`)
	b.Page("correction-awaiting", "waits for another HQ person", e.cards[1].hex(), "€ 2.50", "Approve")
	cs, err := e.ledger.Corrections(context.Background(), org)
	require.NoError(t, err)
	require.Len(t, cs, 1)
	require.Equal(t, ledger.CorrectionAwaitingApproval, cs[0].Status)
	require.Equal(t, "hq:1:staff:alice", cs[0].RequestedBy)

	b.Open("/console/vouchers")
	b.Page("vouchers", "Issue a batch of vouchers", "None.")
	b.Fill("#amount", "5")
	b.Fill("#count", "3")
	b.Fill("#label", "crew drinks")
	b.Submit(`form[action="/console/vouchers"] button[value=page]`)
	b.Page("vouchers-issued", "shown only now", "crew drinks")
	n, err := chromedp.Run(b.Ctx, chromedp.Evaluate[int](`document.querySelectorAll("#voucher-codes code").length`))
	require.NoError(t, err)
	require.Equal(t, 3, n)
	code, err := chromedp.Run(b.Ctx, chromedp.Text(chromedp.CSS("#voucher-codes code")))
	require.NoError(t, err)
	require.NotContains(t, e.logs.String(), code, "a code is in no log")
	b.Open("/console/vouchers")
	require.NotContains(t, b.Text(), code, "the codes are shown once")

	b.Open("/console/corrections?lang=nl")
	b.Page("nl-corrections", "Correcties", "Een betaling corrigeren", "Goedkeuren")
	b.Open("/console/vouchers")
	b.Page("nl-vouchers", "Voucherreeksen", "crew drinks", "Uitgeven en de codes tonen")
	b.Open("/console/corrections?lang=en")
}

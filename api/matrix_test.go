package api_test

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/menu"
	"github.com/loopcard/loopcard/ledger/payment"
	"github.com/loopcard/loopcard/ledger/sepa"
	"github.com/loopcard/loopcard/personalize"
	"github.com/loopcard/loopcard/personalize/handover"
)

// TestRoleMatrix calls every route as every role: the roles the matrix
// allows succeed, every other gets 401 (no credentials) or 403 and changes
// nothing.
func TestRoleMatrix(t *testing.T) {
	e := newEnv(t, envOptions{cards: 11})
	ctx := context.Background()
	term := e.enrolTerminal("bar-m")
	// A payment to correct, a cent at a time, every correction awaiting
	// approval; and vouchers to redeem.
	res, err := e.ledger.Upload(ctx, org, [][]byte{e.debit(term, e.cards[4], 1, 1000, 1000)})
	require.NoError(t, err)
	corrected := res[0].ID.String()
	require.NoError(t, e.ledger.SetCorrectionThreshold(ctx, org, 0))
	voucher := func() string {
		_, codes, err := e.ledger.IssueVouchers(ctx, org, ledger.VoucherBatch{Event: "fest", Amount: 5, Count: 1, Expires: e.clock.Now().Add(time.Hour), Actor: "setup"})
		require.NoError(t, err)
		return codes[0].Reveal()
	}
	// A menu with a deposit item, and a payment of its own card to void.
	_, err = e.ledger.SetMenu(ctx, org, "bar", []menu.Product{{ID: "beer", Name: "Beer", Price: 350, VATRateBP: 2100},
		{ID: "cup", Name: "Cup", Price: 100, Deposit: true}}, "setup")
	require.NoError(t, err)
	res, err = e.ledger.Upload(ctx, org, [][]byte{e.debit(term, e.cards[9], 1, 1000, 300)})
	require.NoError(t, err)
	require.Equal(t, ledger.Accepted, res[0].Status)
	voided := res[0].ID.String()
	sk := e.sessionKey(term)
	holder, claimed, flagged := e.cards[0], e.cards[1], e.cards[3]
	e.stock("store-a")
	flaggedSeq := uint32(1)

	r := e.do(request{method: "POST", path: "/v1/card/claim", card: claimed.token, pin: claimed.pin,
		body: claimBody{Email: "m@example.org", Password: "matrix password", Consent: consent}})
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	r = e.do(request{method: "POST", path: "/v1/profile/login", body: loginBody{Org: org, Email: "m@example.org", Password: "matrix password"}})
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	var lr apitype.LoginResponse
	r.json(t, &lr)

	stores, _, numbers := e.custody()
	r = e.do(request{method: "POST", path: "/v1/hq/stores/store-a/key", bearer: e.tokens["hq"], body: apitype.StoreKeyRequest{Vkey: stores["store-a"].PublicKey().Vkey()}})
	require.Equal(t, 201, r.status, string(r.body))
	r = e.do(request{method: "POST", path: fmt.Sprintf("/v1/hq/batches/%d/handover", e.batch), bearer: e.tokens["hq"], body: apitype.HandOverRequest{Store: "store-a", Count: 2}})
	require.Equal(t, 201, r.status, string(r.body))
	soldCard, err := personalize.ParseCardID(numbers[0])
	require.NoError(t, err)
	pay(t, e, holder, "m-1", 100)
	loads, err := e.ledger.PendingLoads(ctx, org, holder.uid)
	require.NoError(t, err)
	require.Len(t, loads, 1)
	matrixLoad := loads[0].ID.String()
	sales, closes := 0, 0
	storeKex, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	r = e.do(request{method: "PUT", path: "/v1/stores/store-a/kex-key", bearer: e.tokens["store"],
		body: apitype.StoreKexRequest{Alg: "x25519", PublicKey: storeKex.PublicKey().Bytes()}})
	require.Equal(t, 200, r.status, string(r.body))

	var logoutToken string
	// credentials sets the request up as role.
	credentials := func(role api.Role, req *request) {
		switch role {
		case api.RoleHQ, api.RoleStore, api.RoleAuditor:
			req.bearer = e.tokens[string(role)]
		case api.RoleTerminal:
			req.terminal, req.session = term, sk.KeyID
		case api.RoleCard:
			req.card = holder.token
		case api.RoleCardPIN:
			req.card, req.pin = holder.token, holder.pin
			if req.path == "/v1/card/block" {
				req.card, req.pin = e.cards[6].token, e.cards[6].pin // the holder's card stays usable
			}
		case api.RoleProfile:
			req.bearer = lr.Token
			if req.path == "/v1/profile/logout" {
				req.bearer = logoutToken // a login of its own, which it ends
			}
		}
	}
	n := 0
	next := func() int { n++; return n }
	cardSeq := uint32(0)
	balance := int64(1000)
	// Each route's request, made fresh for every call (setup done here is
	// not counted as a change by the request).
	var payout string // a booked payout run, made at the first request for its file
	requests := map[string]func() request{
		"GET /healthz":         func() request { return request{method: "GET", path: "/healthz"} },
		"GET /metrics":         func() request { return request{method: "GET", path: "/metrics"} },
		"GET /v1/openapi.json": func() request { return request{method: "GET", path: "/v1/openapi.json"} },
		"POST /v1/terminals/enrol": func() request {
			id := fmt.Sprintf("new-%d", next())
			tok, err := e.ledger.CreateTerminal(ctx, org, id, "bar", time.Hour)
			require.NoError(t, err)
			pub, _, err := ed25519.GenerateKey(rand.Reader)
			require.NoError(t, err)
			return request{method: "POST", path: "/v1/terminals/enrol", body: apitype.EnrolRequest{Org: org, Terminal: id,
				Token: tok.Reveal(), SigningKey: pub, KexAlg: "x25519", KexKey: term.kexKey.PublicKey().Bytes()}}
		},
		"POST /v1/terminal/session-keys": func() request {
			return request{method: "POST", path: "/v1/terminal/session-keys", body: apitype.SessionKeyRequest{Event: "fest"}}
		},
		"GET /v1/terminal/pending-loads": func() request {
			return request{method: "GET", path: "/v1/terminal/pending-loads?card=" + holder.hex()}
		},
		"POST /v1/terminal/credit-keys": func() request {
			return request{method: "POST", path: "/v1/terminal/credit-keys", body: apitype.CreditKeyRequest{Card: holder.hex(), Load: matrixLoad}}
		},
		"POST /v1/terminal/loads/{load}/written": func() request {
			return request{method: "POST", path: "/v1/terminal/loads/" + matrixLoad + "/written",
				body: apitype.LoadWrittenRequest{Card: holder.hex(), Write: &apitype.CardWrite{Seq: 1, Before: 1000, After: 1100}}}
		},
		"GET /v1/terminal/menu": func() request { return request{method: "GET", path: "/v1/terminal/menu"} },
		"POST /v1/terminal/voids": func() request {
			return request{method: "POST", path: "/v1/terminal/voids", body: apitype.VoidRequest{ID: newIdem(), Payment: voided}}
		},
		"POST /v1/terminal/deposit-returns": func() request {
			return request{method: "POST", path: "/v1/terminal/deposit-returns", body: apitype.DepositReturnRequest{ID: newIdem(),
				Card: e.cards[9].hex(), Items: []apitype.LineItem{{Product: "cup", Quantity: -1, UnitPrice: 100, MenuVersion: 1}}}}
		},
		"PUT /v1/hq/merchants/{merchant}/menu": func() request {
			return request{method: "PUT", path: "/v1/hq/merchants/bar/menu", body: apitype.MenuRequest{Products: []apitype.MenuProduct{
				{ID: "beer", Name: "Beer", Price: 350, VATRateBP: 2100}, {ID: "cup", Name: "Cup", Price: 100, Deposit: true}}}}
		},
		"GET /v1/hq/merchants/{merchant}/menu": func() request {
			return request{method: "GET", path: "/v1/hq/merchants/bar/menu"}
		},
		"POST /v1/stores/{store}/sales": func() request {
			sales++ // hq and store each sell another card
			return request{method: "POST", path: "/v1/stores/store-a/sales", idem: newIdem(), body: apitype.SaleRequest{Card: e.cards[sales%3].hex(), Deposit: 100}}
		},
		"POST /v1/stores/{store}/day-close": func() request {
			closes++ // hq and store each close another day
			day := e.clock.Now().UTC().AddDate(0, 0, -closes).Format(time.DateOnly)
			return request{method: "POST", path: "/v1/stores/store-a/day-close", body: apitype.DayCloseRequest{Day: day, Counted: 0}}
		},
		"GET /v1/stores/{store}/business-day": func() request {
			return request{method: "GET", path: "/v1/stores/store-a/business-day"}
		},
		"GET /v1/hq/reports/store-days": func() request { return request{method: "GET", path: "/v1/hq/reports/store-days"} },
		"GET /v1/stores/{store}/days":   func() request { return request{method: "GET", path: "/v1/stores/store-a/days"} },
		"GET /v1/hq/reports/events/{event}": func() request {
			return request{method: "GET", path: "/v1/hq/reports/events/fest"}
		},
		"GET /v1/hq/reports/products": func() request {
			return request{method: "GET", path: "/v1/hq/reports/products?event=fest"}
		},
		"POST /v1/terminal/batches": func() request {
			cardSeq++
			tx := e.debit(term, e.cards[2], cardSeq, balance, 1)
			return request{method: "POST", path: "/v1/terminal/batches", body: apitype.BatchRequest{Transactions: [][]byte{tx}}}
		},
		"POST /v1/stores/{store}/topups": func() request {
			return request{method: "POST", path: "/v1/stores/store-a/topups", idem: newIdem(), body: apitype.TopUpRequest{Card: holder.hex(), Amount: 100}}
		},
		"PUT /v1/stores/{store}/kex-key": func() request {
			return request{method: "PUT", path: "/v1/stores/store-a/kex-key", body: apitype.StoreKexRequest{Alg: "x25519", PublicKey: storeKex.PublicKey().Bytes()}}
		},
		"GET /v1/stores/{store}/pending-loads": func() request {
			return request{method: "GET", path: "/v1/stores/store-a/pending-loads?card=" + holder.hex()}
		},
		"POST /v1/stores/{store}/credit-keys": func() request {
			id, err := e.ledger.TopUpCash(ctx, org, ledger.CashTopUp{Store: "store-a", Card: e.cards[2].uid, Amount: 5})
			require.NoError(t, err)
			return request{method: "POST", path: "/v1/stores/store-a/credit-keys", body: apitype.CreditKeyRequest{Card: e.cards[2].hex(), Load: id.String()}}
		},
		"POST /v1/stores/{store}/balance-keys": func() request {
			return request{method: "POST", path: "/v1/stores/store-a/balance-keys", body: apitype.BalanceKeyRequest{Card: holder.hex()}}
		},
		"POST /v1/stores/{store}/loads/{load}/written": func() request {
			id, err := e.ledger.TopUpCash(ctx, org, ledger.CashTopUp{Store: "store-a", Card: e.cards[2].uid, Amount: 5})
			require.NoError(t, err)
			return request{method: "POST", path: "/v1/stores/store-a/loads/" + id.String() + "/written", idem: newIdem(),
				body: apitype.LoadWrittenRequest{Card: e.cards[2].hex()}}
		},
		"POST /v1/stores/{store}/receipts": func() request {
			rc, err := handover.NewReceipt(stores["store-a"], org, e.batch, "store-a", 2, e.clock.Now())
			require.NoError(t, err)
			return request{method: "POST", path: "/v1/stores/store-a/receipts", body: apitype.EntriesRequest{Entries: []handover.Entry{rc}}}
		},
		"POST /v1/stores/{store}/card-events": func() request {
			ev, err := handover.SignCardEvents(stores["store-a"], org, e.clock.Now(),
				[]handover.CardEvent{{Type: handover.TypeCardSold, Card: soldCard, Store: "store-a"}})
			require.NoError(t, err)
			return request{method: "POST", path: "/v1/stores/store-a/card-events", body: apitype.EntriesRequest{Entries: ev}}
		},
		"POST /v1/hq/stores/{store}/key": func() request {
			return request{method: "POST", path: "/v1/hq/stores/store-b/key", body: apitype.StoreKeyRequest{Vkey: stores["store-b"].PublicKey().Vkey()}}
		},
		"POST /v1/hq/batches/{batch}/handover": func() request {
			return request{method: "POST", path: fmt.Sprintf("/v1/hq/batches/%d/handover", e.batch), body: apitype.HandOverRequest{Store: "store-b", Count: 1}}
		},
		"GET /v1/audit/export": func() request { return request{method: "GET", path: "/v1/audit/export"} },
		"GET /v1/audit/verify": func() request { return request{method: "GET", path: "/v1/audit/verify"} },
		"POST /v1/hq/stores": func() request {
			return request{method: "POST", path: "/v1/hq/stores", body: apitype.StoreRequest{Store: fmt.Sprintf("s-%d", next()), Name: "S"}}
		},
		"POST /v1/hq/terminals": func() request {
			return request{method: "POST", path: "/v1/hq/terminals", body: apitype.TerminalRequest{Terminal: fmt.Sprintf("t-%d", next()), Merchant: "bar"}}
		},
		"DELETE /v1/hq/terminals/{terminal}": func() request {
			id := fmt.Sprintf("r-%d", next())
			_, err := e.ledger.CreateTerminal(ctx, org, id, "bar", time.Hour)
			require.NoError(t, err)
			return request{method: "DELETE", path: "/v1/hq/terminals/" + id}
		},
		"DELETE /v1/hq/tokens/{token}": func() request {
			tok, err := api.IssueToken(ctx, e.pool, api.TokenRequest{Org: org, Role: api.RoleAuditor, TTL: time.Hour}, e.clock.Now())
			require.NoError(t, err)
			return request{method: "DELETE", path: "/v1/hq/tokens/" + tok.ID}
		},
		"DELETE /v1/hq/terminals/{terminal}/session-keys": func() request {
			return request{method: "DELETE", path: "/v1/hq/terminals/bar-other/session-keys"}
		},
		"GET /v1/hq/stores":            func() request { return request{method: "GET", path: "/v1/hq/stores"} },
		"GET /v1/hq/terminals":         func() request { return request{method: "GET", path: "/v1/hq/terminals"} },
		"GET /v1/hq/batches":           func() request { return request{method: "GET", path: "/v1/hq/batches"} },
		"GET /v1/hq/keys":              func() request { return request{method: "GET", path: "/v1/hq/keys"} },
		"GET /v1/hq/alerts":            func() request { return request{method: "GET", path: "/v1/hq/alerts"} },
		"GET /v1/hq/refunds":           func() request { return request{method: "GET", path: "/v1/hq/refunds"} },
		"GET /v1/hq/held-transactions": func() request { return request{method: "GET", path: "/v1/hq/held-transactions"} },
		"POST /v1/hq/payouts": func() request {
			return request{method: "POST", path: "/v1/hq/payouts", body: apitype.PayoutRequest{DebtorName: "Org", DebtorIBAN: "NL91ABNA0417164300", DryRun: true}}
		},
		"GET /v1/hq/payouts": func() request { return request{method: "GET", path: "/v1/hq/payouts"} },
		"GET /v1/hq/payouts/{payout}/file": func() request {
			if payout == "" {
				// A booked payout run of card 10's refund.
				c := e.cards[10]
				r := e.do(request{method: "POST", path: "/v1/card/refund", card: c.token, pin: c.pin,
					body: apitype.RefundRequest{Name: "Ada Lovelace", IBAN: "NL91ABNA0417164300"}})
				require.Equal(t, http.StatusCreated, r.status, string(r.body))
				debtor := sepa.Party{Name: "Org", IBAN: "NL91ABNA0417164300"}
				dry, err := e.ledger.RunPayout(ctx, org, debtor, e.clock.Now().AddDate(0, 0, 1), ledger.PayoutOptions{DryRun: true})
				require.NoError(t, err)
				p, err := e.ledger.RunPayout(ctx, org, debtor, e.clock.Now().AddDate(0, 0, 1), ledger.PayoutOptions{Approve: dry.Plan})
				require.NoError(t, err)
				payout = p.ID.String()
			}
			return request{method: "GET", path: "/v1/hq/payouts/" + payout + "/file"}
		},
		"GET /v1/hq/cards/{card}": func() request {
			return request{method: "GET", path: "/v1/hq/cards/" + flagged.hex()}
		},
		"POST /v1/hq/alerts/{alert}/review": func() request {
			// A fresh alert to review: clone evidence on the flagged card
			// when it is active, else a sequence gap (a notice).
			flaggedSeq += 2
			info, err := e.ledger.Card(ctx, org, flagged.uid)
			require.NoError(t, err)
			if info.Status == "active" {
				e.cloneDebits(term, flagged, flaggedSeq)
			} else {
				_, err := e.ledger.Upload(ctx, org, [][]byte{e.debit(term, flagged, flaggedSeq, e.balance(flagged), 1)})
				require.NoError(t, err)
			}
			alerts, err := e.ledger.Alerts(ctx, org)
			require.NoError(t, err)
			last := alerts[len(alerts)-1]
			require.Equal(t, "open", last.State())
			return request{method: "POST", path: "/v1/hq/alerts/" + last.ID.String() + "/review", body: apitype.ReviewRequest{Reason: "matrix"}}
		},
		"POST /v1/hq/cards/{card}/unblock": func() request {
			// The flagged card blocked, its alerts reviewed.
			info, err := e.ledger.Card(ctx, org, flagged.uid)
			require.NoError(t, err)
			if info.Status == "active" {
				flaggedSeq += 2
				e.cloneDebits(term, flagged, flaggedSeq)
			}
			alerts, err := e.ledger.Alerts(ctx, org)
			require.NoError(t, err)
			for _, a := range alerts {
				if a.Review == nil {
					_, err := e.ledger.ReviewAlert(ctx, org, a.ID, "setup", "matrix setup")
					require.NoError(t, err)
				}
			}
			return request{method: "POST", path: "/v1/hq/cards/" + flagged.hex() + "/unblock", body: apitype.ReviewRequest{Reason: "matrix"}}
		},
		"POST /v1/stores/{store}/corrections": func() request {
			return request{method: "POST", path: "/v1/stores/store-a/corrections", idem: newIdem(), body: apitype.CorrectionRequest{Payment: corrected, Amount: 1, Reason: "matrix"}}
		},
		"POST /v1/hq/corrections": func() request {
			return request{method: "POST", path: "/v1/hq/corrections", idem: newIdem(), body: apitype.CorrectionRequest{Payment: corrected, Amount: 1, Reason: "matrix"}}
		},
		"GET /v1/hq/corrections": func() request { return request{method: "GET", path: "/v1/hq/corrections"} },
		"POST /v1/hq/corrections/{correction}/approve": func() request {
			pay, err := ledgerID(corrected)
			require.NoError(t, err)
			c, err := e.ledger.RequestCorrection(ctx, org, ledger.CorrectionRequest{Payment: pay, Amount: 1, Reason: "matrix", Actor: "setup"})
			require.NoError(t, err)
			return request{method: "POST", path: "/v1/hq/corrections/" + c.ID.String() + "/approve"}
		},
		"GET /v1/hq/vouchers": func() request { return request{method: "GET", path: "/v1/hq/vouchers"} },
		"POST /v1/hq/vouchers": func() request {
			return request{method: "POST", path: "/v1/hq/vouchers", body: apitype.VoucherBatchRequest{Event: "fest", Amount: 5, Count: 1, Expires: e.clock.Now().Add(time.Hour)}}
		},
		"POST /v1/stores/{store}/vouchers": func() request {
			return request{method: "POST", path: "/v1/stores/store-a/vouchers", idem: newIdem(), body: voucherBody{Card: holder.hex(), Code: voucher()}}
		},
		"POST /v1/card/vouchers": func() request {
			return request{method: "POST", path: "/v1/card/vouchers", body: voucherBody{Code: voucher()}}
		},
		"GET /v1/audit/records": func() request { return request{method: "GET", path: "/v1/audit/records?after=0"} },
		"GET /v1/card":          func() request { return request{method: "GET", path: "/v1/card"} },
		"GET /v1/card/history":  func() request { return request{method: "GET", path: "/v1/card/history"} },
		"POST /v1/hq/cards/{card}/block": func() request {
			return request{method: "POST", path: "/v1/hq/cards/" + e.cards[4].hex() + "/block", body: apitype.BlockRequest{Reason: "lost"}}
		},
		"POST /v1/stores/{store}/cards/{card}/block": func() request {
			return request{method: "POST", path: "/v1/stores/store-a/cards/" + e.cards[5].hex() + "/block", body: apitype.BlockRequest{Reason: "stolen"}}
		},
		"POST /v1/stores/{store}/replacements": func() request {
			return request{method: "POST", path: "/v1/stores/store-a/replacements", idem: newIdem(),
				body: apitype.ReplaceRequest{Old: e.cards[7].hex(), New: e.cards[8].hex(), Reason: "lost"}}
		},
		"POST /v1/card/block": func() request {
			return request{method: "POST", path: "/v1/card/block", body: apitype.BlockRequest{Reason: "lost"}}
		},
		"POST /v1/profile/cards/{card}/block": func() request {
			return request{method: "POST", path: "/v1/profile/cards/" + claimed.hex() + "/block", body: apitype.BlockRequest{Reason: "lost"}}
		},
		"POST /v1/card/refund": func() request {
			return request{method: "POST", path: "/v1/card/refund", body: apitype.RefundRequest{Name: "M", IBAN: "GB82 WEST 1234 5698 7654 32"}}
		},
		"POST /v1/card/claim": func() request {
			return request{method: "POST", path: "/v1/card/claim", body: claimBody{Email: "h@example.org", Password: "holder password", Consent: consent}}
		},
		"POST /v1/profile/login": func() request {
			return request{method: "POST", path: "/v1/profile/login", body: loginBody{Org: org, Email: "m@example.org", Password: "matrix password"}}
		},
		"POST /v1/profile/logout": func() request {
			r := e.do(request{method: "POST", path: "/v1/profile/login", body: loginBody{Org: org, Email: "m@example.org", Password: "matrix password"}})
			require.Equal(t, 200, r.status, string(r.body))
			var out apitype.LoginResponse
			r.json(t, &out)
			logoutToken = out.Token
			return request{method: "POST", path: "/v1/profile/logout"}
		},
		"POST /v1/payments/webhook": func() request {
			id := fmt.Sprintf("evt_matrix_%d", next())
			body, err := json.Marshal(payment.Event{ID: id, Type: payment.TypePaymentSucceeded, Payment: "pay_" + id, Org: org,
				Card: e.cards[2].hex(), Amount: 100, Currency: "EUR", Created: e.clock.Now().Unix()})
			require.NoError(t, err)
			return request{method: "POST", path: "/v1/payments/webhook", body: body,
				header: map[string]string{payment.Header: payment.Sign(e.payer.Secret, e.clock.Now(), body)}}
		},
		"GET /v1/profile":    func() request { return request{method: "GET", path: "/v1/profile"} },
		"DELETE /v1/profile": func() request { return request{method: "DELETE", path: "/v1/profile"} },
		"POST /v1/profile/cards/{card}/refund": func() request {
			return request{method: "POST", path: "/v1/profile/cards/" + claimed.hex() + "/refund", body: apitype.RefundRequest{Name: "M", IBAN: "GB82 WEST 1234 5698 7654 32"}}
		},
		"POST /v1/profile/cards/{card}/autotopup": func() request {
			return request{method: "POST", path: "/v1/profile/cards/" + claimed.hex() + "/autotopup",
				body: apitype.AutoTopUpRequest{Amount: 2000, Threshold: 500, DailyLimit: 4000, ReturnURL: "https://cards.example/account?autotopup=saved"}}
		},
		"DELETE /v1/profile/cards/{card}/autotopup": func() request {
			return request{method: "DELETE", path: "/v1/profile/cards/" + claimed.hex() + "/autotopup"}
		},
	}
	routes := e.srv.Routes()
	// Erasing the profile comes last: the profile's token ends with it.
	slices.SortStableFunc(routes, func(a, b api.Pattern) int {
		last := func(p api.Pattern) int {
			if p.Method == "DELETE" && p.Path == "/v1/profile" {
				return 1
			}
			return 0
		}
		return last(a) - last(b)
	})
	require.Len(t, requests, len(routes), "a request for every route")
	calls := 0
	for _, rt := range routes {
		name := rt.Method + " " + rt.Path
		build, ok := requests[name]
		require.True(t, ok, "no request for %s", name)
		for _, role := range api.AllRoles {
			allowed := slices.Contains(rt.Roles, api.RolePublic) || slices.Contains(rt.Roles, role) ||
				(role == api.RoleCardPIN && slices.Contains(rt.Roles, api.RoleCard))
			req := build()
			credentials(role, &req)
			before := e.fingerprint()
			r := e.do(req)
			calls++
			if allowed {
				require.True(t, r.status >= 200 && r.status < 300, "%s as %s: %d %s", name, role, r.status, r.body)
				if name == "POST /v1/terminal/batches" {
					balance--
				}
				continue
			}
			want := http.StatusForbidden
			if role == api.RoleAnonymous {
				want = http.StatusUnauthorized
			}
			require.Equal(t, want, r.status, "%s as %s: %s", name, role, r.body)
			require.Equal(t, before, e.fingerprint(), "%s as %s changed something", name, role)
			if name == "POST /v1/terminal/batches" {
				cardSeq-- // the refused debit never happened; reuse its sequence
				term.seq--
			}
		}
	}
	require.Equal(t, len(routes)*len(api.AllRoles), calls)

	// Scopes: a store's token acts on its own store only.
	before := e.fingerprint()
	r = e.do(request{method: "POST", path: "/v1/stores/store-a/topups", bearer: e.tokens["store-b"], idem: newIdem(), body: apitype.TopUpRequest{Card: holder.hex(), Amount: 100}})
	require.Equal(t, http.StatusForbidden, r.status)
	require.Equal(t, before, e.fingerprint())
	// Every denial was audited.
	require.GreaterOrEqual(t, e.auditCount(`outcome = 'denied'`), 100)
}

// consent is what a cardholder agrees to at a claim.
var consent = apitype.Consent{Purposes: []string{apitype.ConsentProfile}, Notice: "2026-11"}

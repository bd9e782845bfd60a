package api

import (
	"net/http"
	"slices"

	"github.com/loopcard/loopcard/api/internal/metrics"
)

// Role is who a request is from, as authenticate found out.
type Role string

// The roles of the role matrix.
const (
	RoleAnonymous Role = "anonymous" // no credentials
	RoleHQ        Role = "hq"        // headquarters admin
	RoleStore     Role = "store"     // operator of one store
	RoleAuditor   Role = "auditor"   // reads exports, changes nothing
	RoleTerminal  Role = "terminal"  // enrolled terminal, signed request
	RoleCard      Role = "card"      // holder of a card's QR token
	RoleCardPIN   Role = "card_pin"  // QR token and the right PIN (may do all card may)
	RoleProfile   Role = "profile"   // cardholder logged in to a claimed profile

	// RolePublic in a route's roles lets anyone call it, with or without
	// credentials.
	RolePublic Role = "public"
)

// AllRoles are the roles a principal can have.
var AllRoles = []Role{RoleAnonymous, RoleHQ, RoleStore, RoleAuditor, RoleTerminal, RoleCard, RoleCardPIN, RoleProfile}

type handler func(c *call) error

// route is one row of the role matrix.
type route struct {
	method, path string
	roles        []Role
	h            handler
	// privileged requests are audited when they succeed too (failures
	// always are).
	privileged bool
	// bigBody allows Limits.MaxBatchBody instead of Limits.MaxBody.
	bigBody bool
	// session requires a terminal's current session key.
	session bool
	// money requires an Idempotency-Key header (a UUID): the request moves
	// money, and a retry with the same key must not move it twice.
	money bool
	// rerun: the handler may run again when the database went away under
	// it (a failover, see rideFailover): what it records is keyed by the
	// request (terminal transaction ids, payment event ids, store-signed
	// custody entries), so it is recorded once, or is a fresh key that a
	// second run only issues again. GET and money routes are rerun too.
	rerun bool
}

func roles(r ...Role) []Role { return r }

func (rt *route) pattern() string {
	if rt.method == "" {
		return rt.path
	}
	return rt.method + " " + rt.path
}

// Pattern is a route as the mux knows it, with the roles allowed on it.
type Pattern struct {
	Method, Path string
	Roles        []Role
}

// Routes returns the role matrix: every route and who may call it.
func (s *Server) Routes() []Pattern {
	out := make([]Pattern, len(s.routes))
	for i, rt := range s.routes {
		out[i] = Pattern{Method: rt.method, Path: rt.path, Roles: slices.Clone(rt.roles)}
	}
	return out
}

// table is the role matrix: every route, who may call it, and its handler.
func (s *Server) table() []route {
	staff := roles(RoleHQ)
	return []route{
		// Operations.
		{method: "GET", path: "/healthz", roles: roles(RolePublic), h: s.healthz},
		// The metrics show security counters: for HQ and auditors only.
		{method: "GET", path: "/metrics", roles: roles(RoleHQ, RoleAuditor), h: s.metricsHandler},
		{method: "GET", path: "/v1/openapi.json", roles: roles(RolePublic), h: s.openAPI},

		// Terminals.
		{method: "POST", path: "/v1/terminals/enrol", roles: roles(RolePublic), h: s.enrolTerminal, privileged: true},
		{method: "POST", path: "/v1/terminal/session-keys", roles: roles(RoleTerminal), h: s.sessionKey, privileged: true, rerun: true},
		{method: "GET", path: "/v1/terminal/pending-loads", roles: roles(RoleTerminal), h: s.pendingLoads, session: true},
		{method: "POST", path: "/v1/terminal/credit-keys", roles: roles(RoleTerminal), h: s.creditKey, privileged: true, session: true, rerun: true},
		{method: "POST", path: "/v1/terminal/loads/{load}/written", roles: roles(RoleTerminal), h: s.loadWritten, privileged: true, session: true, rerun: true},
		{method: "POST", path: "/v1/terminal/batches", roles: roles(RoleTerminal), h: s.uploadBatch, privileged: true, bigBody: true, session: true, rerun: true},
		{method: "GET", path: "/v1/terminal/menu", roles: roles(RoleTerminal), h: s.terminalMenu, session: true},
		{method: "POST", path: "/v1/terminal/voids", roles: roles(RoleTerminal), h: s.voidPayment, privileged: true, session: true, rerun: true},
		{method: "POST", path: "/v1/terminal/deposit-returns", roles: roles(RoleTerminal), h: s.depositReturn, privileged: true, session: true, rerun: true},

		// Stores.
		{method: "POST", path: "/v1/stores/{store}/topups", roles: roles(RoleStore, RoleHQ), h: s.cashTopUp, privileged: true, money: true},
		{method: "POST", path: "/v1/stores/{store}/sales", roles: roles(RoleStore, RoleHQ), h: s.sellCard, privileged: true, money: true},
		{method: "PUT", path: "/v1/stores/{store}/kex-key", roles: roles(RoleStore), h: s.registerStoreKex, privileged: true, rerun: true},
		{method: "GET", path: "/v1/stores/{store}/pending-loads", roles: roles(RoleStore), h: s.pendingLoads},
		{method: "POST", path: "/v1/stores/{store}/credit-keys", roles: roles(RoleStore), h: s.storeCreditKey, privileged: true, rerun: true},
		{method: "POST", path: "/v1/stores/{store}/balance-keys", roles: roles(RoleStore), h: s.storeBalanceKey, privileged: true, rerun: true},
		{method: "POST", path: "/v1/stores/{store}/loads/{load}/written", roles: roles(RoleStore), h: s.loadWritten, privileged: true, money: true},
		{method: "POST", path: "/v1/stores/{store}/day-close", roles: roles(RoleStore, RoleHQ), h: s.closeDay, privileged: true},
		{method: "GET", path: "/v1/stores/{store}/business-day", roles: roles(RoleStore, RoleHQ), h: s.storeBusinessDay},
		{method: "GET", path: "/v1/stores/{store}/days", roles: roles(RoleStore, RoleHQ, RoleAuditor), h: s.ownStoreDays, privileged: true},
		{method: "POST", path: "/v1/stores/{store}/receipts", roles: roles(RoleStore), h: s.storeReceipt, privileged: true, rerun: true},
		{method: "POST", path: "/v1/stores/{store}/cards/{card}/block", roles: roles(RoleStore), h: s.storeBlockCard, privileged: true},
		{method: "POST", path: "/v1/stores/{store}/replacements", roles: roles(RoleStore), h: s.replaceCard, privileged: true, money: true},
		{method: "POST", path: "/v1/stores/{store}/card-events", roles: roles(RoleStore), h: s.storeCardEvents, privileged: true, bigBody: true, rerun: true},
		{method: "POST", path: "/v1/stores/{store}/corrections", roles: roles(RoleStore), h: s.requestCorrection, privileged: true, money: true},
		{method: "POST", path: "/v1/stores/{store}/vouchers", roles: roles(RoleStore), h: s.storeRedeemVoucher, privileged: true, money: true},

		// Headquarters.
		{method: "POST", path: "/v1/hq/stores", roles: staff, h: s.addStore, privileged: true},
		{method: "GET", path: "/v1/hq/stores", roles: roles(RoleHQ, RoleAuditor), h: s.listStores, privileged: true},
		{method: "GET", path: "/v1/hq/terminals", roles: roles(RoleHQ, RoleAuditor), h: s.listTerminals, privileged: true},
		{method: "POST", path: "/v1/hq/terminals", roles: staff, h: s.createTerminal, privileged: true},
		{method: "POST", path: "/v1/hq/stores/{store}/key", roles: staff, h: s.enrolStoreKey, privileged: true},
		{method: "POST", path: "/v1/hq/batches/{batch}/handover", roles: staff, h: s.handOver, privileged: true},
		{method: "DELETE", path: "/v1/hq/terminals/{terminal}", roles: staff, h: s.revokeTerminal, privileged: true},
		{method: "DELETE", path: "/v1/hq/terminals/{terminal}/session-keys", roles: staff, h: s.revokeSessionKeys, privileged: true},
		{method: "DELETE", path: "/v1/hq/tokens/{token}", roles: staff, h: s.revokeToken, privileged: true},
		{method: "GET", path: "/v1/hq/reports/store-days", roles: roles(RoleHQ, RoleAuditor), h: s.storeDays, privileged: true},
		{method: "GET", path: "/v1/hq/reports/events/{event}", roles: roles(RoleHQ, RoleAuditor), h: s.eventReport, privileged: true},
		{method: "GET", path: "/v1/hq/reports/products", roles: roles(RoleHQ, RoleAuditor), h: s.productReport, privileged: true},
		{method: "GET", path: "/v1/hq/batches", roles: staff, h: s.listBatches, privileged: true},
		{method: "GET", path: "/v1/hq/keys", roles: staff, h: s.keyStatus, privileged: true},
		{method: "GET", path: "/v1/hq/refunds", roles: roles(RoleHQ, RoleAuditor), h: s.listRefunds, privileged: true},
		{method: "GET", path: "/v1/hq/held-transactions", roles: roles(RoleHQ, RoleAuditor), h: s.listHeldTxs, privileged: true},
		{method: "POST", path: "/v1/hq/payouts", roles: staff, h: s.runPayout, privileged: true},
		{method: "GET", path: "/v1/hq/payouts", roles: roles(RoleHQ, RoleAuditor), h: s.listPayouts, privileged: true},
		{method: "GET", path: "/v1/hq/payouts/{payout}/file", roles: staff, h: s.payoutFile, privileged: true},
		{method: "GET", path: "/v1/hq/alerts", roles: roles(RoleHQ, RoleAuditor), h: s.listAlerts, privileged: true},
		{method: "POST", path: "/v1/hq/alerts/{alert}/review", roles: staff, h: s.reviewAlert, privileged: true},
		{method: "GET", path: "/v1/hq/cards/{card}", roles: roles(RoleHQ, RoleAuditor), h: s.hqCard, privileged: true},
		{method: "POST", path: "/v1/hq/cards/{card}/block", roles: staff, h: s.hqBlockCard, privileged: true},
		{method: "POST", path: "/v1/hq/cards/{card}/unblock", roles: staff, h: s.unblockCard, privileged: true},
		{method: "POST", path: "/v1/hq/corrections", roles: staff, h: s.requestCorrection, privileged: true, money: true},
		{method: "GET", path: "/v1/hq/corrections", roles: roles(RoleHQ, RoleAuditor), h: s.listCorrections, privileged: true},
		{method: "POST", path: "/v1/hq/corrections/{correction}/approve", roles: staff, h: s.approveCorrection, privileged: true},
		{method: "POST", path: "/v1/hq/vouchers", roles: staff, h: s.issueVouchers, privileged: true},
		{method: "PUT", path: "/v1/hq/merchants/{merchant}/menu", roles: staff, h: s.setMenu, privileged: true},
		{method: "GET", path: "/v1/hq/merchants/{merchant}/menu", roles: roles(RoleHQ, RoleAuditor), h: s.getMenu, privileged: true},
		{method: "GET", path: "/v1/hq/vouchers", roles: roles(RoleHQ, RoleAuditor), h: s.listVoucherBatches, privileged: true},

		// Auditors.
		{method: "GET", path: "/v1/audit/records", roles: roles(RoleAuditor, RoleHQ), h: s.auditRecords, privileged: true},
		{method: "GET", path: "/v1/audit/export", roles: roles(RoleAuditor, RoleHQ), h: s.auditExport, privileged: true},
		{method: "GET", path: "/v1/audit/verify", roles: roles(RoleAuditor, RoleHQ), h: s.auditVerify, privileged: true},

		// Payment provider: the signature is the credential.
		{method: "POST", path: "/v1/payments/webhook", roles: roles(RolePublic), h: s.paymentWebhook, privileged: true, rerun: true},

		// Cardholders.
		{method: "GET", path: "/v1/card", roles: roles(RoleCard), h: s.cardBalance},
		{method: "GET", path: "/v1/card/history", roles: roles(RoleCardPIN), h: s.cardHistory, privileged: true},
		{method: "POST", path: "/v1/card/vouchers", roles: roles(RoleCard), h: s.cardRedeemVoucher, privileged: true},
		{method: "POST", path: "/v1/card/refund", roles: roles(RoleCardPIN), h: s.cardRefund, privileged: true},
		{method: "POST", path: "/v1/card/block", roles: roles(RoleCardPIN), h: s.cardBlock, privileged: true},
		{method: "POST", path: "/v1/card/claim", roles: roles(RoleCardPIN), h: s.claimCard, privileged: true},
		{method: "POST", path: "/v1/profile/login", roles: roles(RolePublic), h: s.login, privileged: true},
		{method: "POST", path: "/v1/profile/logout", roles: roles(RoleProfile), h: s.logout, privileged: true},
		{method: "GET", path: "/v1/profile", roles: roles(RoleProfile), h: s.exportProfile, privileged: true},
		{method: "DELETE", path: "/v1/profile", roles: roles(RoleProfile), h: s.eraseProfile, privileged: true},
		{method: "POST", path: "/v1/profile/cards/{card}/block", roles: roles(RoleProfile), h: s.profileBlock, privileged: true},
		{method: "POST", path: "/v1/profile/cards/{card}/refund", roles: roles(RoleProfile), h: s.profileRefund, privileged: true},
		{method: "POST", path: "/v1/profile/cards/{card}/autotopup", roles: roles(RoleProfile), h: s.setAutoTopUp, privileged: true},
		{method: "DELETE", path: "/v1/profile/cards/{card}/autotopup", roles: roles(RoleProfile), h: s.stopAutoTopUp, privileged: true},
	}
}

// authorize is the one place where the role matrix is enforced: the
// principal's role must be among the route's, a store operator may act on
// their own store only, a profile on its own cards only, and a terminal
// must hold a current session key where the route needs one.
func (s *Server) authorize(c *call) error {
	rt, who := c.route, c.who
	ok := slices.Contains(rt.roles, RolePublic) || slices.Contains(rt.roles, who.role) ||
		(who.role == RoleCardPIN && slices.Contains(rt.roles, RoleCard))
	if !ok {
		if who.role == RoleAnonymous {
			return errUnauthorized
		}
		return errForbidden
	}
	if st := c.r.PathValue("store"); st != "" && who.role == RoleStore && st != who.store {
		return errForbidden
	}
	if card := c.r.PathValue("card"); card != "" && who.role == RoleProfile {
		if err := s.ownsCard(c, card); err != nil {
			return err
		}
	}
	if rt.session && who.role == RoleTerminal {
		if err := s.checkSessionKey(c); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) metricsHandler(c *call) error {
	c.status = http.StatusOK
	c.w.Header().Set("Content-Type", metrics.ContentType)
	_, err := s.metrics.WriteTo(c.w)
	return err
}

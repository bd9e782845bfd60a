// Package api is Loopcard's one door: the HTTPS /v1 API that terminals,
// stores, headquarters, auditors and cardholders use.
//
// # Requests
//
// Every request goes through one chain: request id → access log → recover →
// metrics → admission → per-request timeout → authenticate → rate
// limit per client → authorize → body (read whole within the limit for the
// route and the caller, and for a terminal checked against the digest its
// signature covers) → handler → audit record. No byte of a body is read
// before its sender is known and may call the route; a caller without
// credentials sends at most Limits.MaxAnonymousBody (8 KiB). The http.Server bounds
// every stage as well (header, body, write and idle timeouts), HTTP/2 streams
// and receive windows, and Serve's listener the connections open at once
// per IP address and in total (Limits.MaxConnsPerAddr, MaxConns).
// Admission, before any database work or body read, takes a token of the
// sender's address (an IPv6 address counts by its /64) and, for a request
// without a staff token or a terminal's signature, one of the budget all
// anonymous requests share (Limits.Anonymous), so that the card pages and
// the webhook stay up under traffic from many addresses while staff,
// terminals and /healthz go on; a refusal is a bare 429 with Retry-After,
// counted in the metrics, never audited. Errors leave
// the server as {"error": "...", "request_id": "..."}: a short public
// message, never a cause, stack or SQL; the cause is logged with the request
// id. The access log names the matched route pattern and its well-formed
// wildcards (store, terminal, card id, ...), never the raw path: a card's
// QR token or a bearer token put in a path never reaches a log.
//
// # Who is who
//
//   - Staff (roles hq, store, auditor) send "Authorization: Bearer TOKEN", a
//     random 256-bit token issued with an expiry (loopcard token issue) and
//     stored only as its SHA-256. A store token is bound to one store.
//   - Terminals enrol once with their one-time enrolment token, an Ed25519
//     signing key and an X25519 or P-256 key-agreement key, then sign every
//     request (RFC 9421, package httpsig) with keyid "ORG:TERMINAL"; nonces
//     are remembered until the signature would be stale, so a replayed
//     request is refused. Requests other than enrolment and fetching a
//     session key name a current session key in Loopcard-Session-Key. A
//     terminal may also present a client certificate of the local CA whose
//     common name is its key id.
//   - Cardholders send "Authorization: Card TOKEN" with the QR token of their
//     card (role card), and "Loopcard-PIN: DIGITS" where the PIN is needed
//     (role card_pin, which may do all that card may). Once a profile
//     claimed the card, its history and refund are the profile's: the QR
//     token and PIN get 403 there (the balance still shows). A PIN is tried at
//     most five times; then the card is locked with a back-off that doubles
//     with every lock, and even the right PIN is refused until it ends. A
//     claimed profile logs in with email and password (argon2id) and gets a
//     Bearer token of role profile, which POST /v1/profile/logout revokes.
//     A profile is found by an HMAC of its email in the HSM (email-mac); a
//     claim answers 202 alike whether the email had a profile, so the
//     client logs in next to learn whether the card was added. Password
//     guesses are limited per profile, from any address: after
//     MaxLoginFailures wrong ones every password is refused, with the same
//     401, for a lock that doubles each time (LoginLockBase). A profile's
//     export and erasure cover the refund requests it made, not those made
//     for its card with the QR token and PIN before its claim.
//   - The payment provider posts its events to POST /v1/payments/webhook,
//     signed with a shared secret and a timestamp (package payment); the
//     signature is its credential (Config.Payments). A paid top-up becomes
//     a pending load in the ledger once per event id.
//   - People at HQ use the console (package console, under /console/):
//     named staff accounts (api_staff; hq, store or auditor) sign in with a
//     password (argon2id) and, for hq, a TOTP code; a session is a
//     __Host- cookie (api_staff_sessions) ending after StaffIdle unused or
//     StaffLifetime. Each page calls the routes below in process with the
//     session's principal, so the console has no rights of its own. The
//     session's cookie is no credential of the API.
//
// Which role may call which route is one table (routes.go), enforced in one
// place (authorize), and tested for every route and every role.
//
// # Audit
//
// Every privileged request and every refused or failed one is an audit
// record (api_audit): who, what, when, from where, outcome. Suspicious
// patterns (PIN failures on many cards from one client, a revoked terminal
// trying) raise alerts (api_alerts, a warning log line and a metric).
package api

// Package cardpage is the cardholder's web page behind the QR code on every
// card (/c/{token}): balance and pending loads, online top-up, with the PIN
// the transaction history and a refund request, claiming the card with a
// profile, and the profile's privacy pages (notice, consent, export,
// erasure).
//
// The pages are server-rendered with html/template in English and Dutch,
// with one small optional script and one stylesheet, well under 100 kB a
// page. Every response carries a strict Content-Security-Policy, every form
// a CSRF token (double submit: a SameSite=Strict __Host- cookie and a hidden
// field), and the PIN only ever travels in a POST body.
//
// An online top-up sends the cardholder to the payment provider with a
// return address that names an opaque checkout id (ReturnURL), never the
// card's token; the way back (/topup/{checkout}) finds the card page again
// by a cookie of the browser that started it, or else shows a page that
// names no card.
//
// The package keeps no state of its own: it asks a Backend (the API, see
// package api) for everything, and never logs a card token, PIN, password,
// profile token or bank detail; its access log names routes, not paths.
package cardpage

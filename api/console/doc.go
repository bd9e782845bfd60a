// Package console is the HQ console: the server-rendered pages (under
// /console/) where an organizer's staff sign in with a name, a password
// and, for hq, a TOTP code, and run the event — the dashboard (sales per
// merchant per hour as an SVG chart, top-ups by channel, cards and their
// balance, pending loads, terminals and their last upload), alerts with
// their review and the unblocking of a card, and cards by number (an hq
// member blocks a lost or stolen one, onto the terminals' blocklist).
//
// The package renders and guards; it owns no table and moves no money.
// Everything it shows or changes comes from its Backend, which the API
// implements by sending each call through its own role matrix and audit
// as a request of the signed-in staff member. Pages have a strict
// Content-Security-Policy (no script at all, styles from this server
// only), load nothing from elsewhere, speak English and Dutch, and
// protect every form with a double-submit CSRF token.
package console

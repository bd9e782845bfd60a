// Package pos is Loopcard's point-of-sale apps, served on loopback to a
// touch screen's browser: the bar terminal's (product buttons by category,
// a basket, "present card", paid or declined with the new balance, the last
// transactions, the offline queue, a void of the last payment) over the
// reference terminal (api/terminal) and its reader, and the store till's
// (sell a card with deposit and credit, cash top-up, balance check, the
// day's cash and its close) over the store client (api/storeclient).
//
// The pages are rendered on the server (html/template, English and Dutch)
// with embedded assets, a strict Content-Security-Policy and the shared
// double-submit CSRF guard (api/internal/csrf) on every form. One small
// script only polls the "present card" page; without it the page has a
// link to look again. The apps hold one basket and one card operation at a
// time: they are one screen's, on the same machine.
//
// The bar app asks the terminal for what it needs through Till, which
// TerminalTill implements over api/terminal. The apps keep working with the
// server unreachable: the terminal signs and queues offline and its
// uploader sends the queue when the server is back.
package pos

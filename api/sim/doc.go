// Package sim runs a whole Loopcard installation in one process — the
// HSM, the ledger on PostgreSQL and the HTTPS API on loopback — for
// `loopcard terminal simulate` and for tests that need every part at once:
// cards personalized through the station, sold through the store client,
// terminals (package api/terminal) enrolled through the HQ API.
//
// Everything runs on embedded defaults unless told otherwise: the SoftHSM2
// token and a private PostgreSQL under the data directory, and the API
// served on 127.0.0.1 with a certificate made for the run. The demo is not
// here: `loopcard demo` runs an event with the product's own commands
// (package cmd/internal/runbook).
package sim

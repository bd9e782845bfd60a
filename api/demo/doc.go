// Package demo runs a whole Loopcard installation in one process and walks
// it through an event, for `loopcard demo` and its end-to-end test: key
// ceremony in the HSM, a batch of virtual cards personalized through the
// station with their labels printed to PDF, handover to two stores with
// signed receipts, cards sold with cash loaded onto them, terminals (package
// api/terminal) taking payments offline and uploading late with
// duplicates, a cloned card caught by the ledger, each store's day close,
// and an audit export verified offline.
//
// Everything runs on embedded defaults unless told otherwise: the SoftHSM2
// token and a private PostgreSQL under the data directory (a fresh database
// "demo" on every run), and the HTTPS API served on 127.0.0.1 with a
// certificate made for the run. The steps call the library packages and
// the API, never the command line. Run returns a Summary whose figures the
// end-to-end test checks; the files it leaves are named in Summary.Files.
package demo

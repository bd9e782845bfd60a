package console

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// Errors a Backend returns for what the pages explain.
var (
	ErrLogin     = errors.New("console: wrong organizer, name, password or code")
	ErrSession   = errors.New("console: session ended")
	ErrForbidden = errors.New("console: not for this role")
	ErrNotFound  = errors.New("console: not found")
	ErrConflict  = errors.New("console: already done, or not yet possible")
	ErrInvalid   = errors.New("console: invalid input")
)

// Staff is who is signed in.
type Staff struct {
	Org   int64
	Name  string
	Role  string // hq, store or auditor
	Store string
}

// Backend is what the pages need. Session returns a context that carries
// the signed-in staff member: every other call but Login is made with it,
// and acts as that member under the API's role matrix.
type Backend interface {
	Login(ctx context.Context, from string, org int64, name string, password Secret, code string) (Secret, error)
	Session(ctx context.Context, session Secret) (context.Context, Staff, error)
	Logout(ctx context.Context, from string, session Secret) error

	Events(ctx context.Context, from string) ([]string, error)
	Dashboard(ctx context.Context, from, event string) (Dashboard, error)
	Alerts(ctx context.Context, from string) ([]Alert, error)
	// HeldTxs lists held terminal transactions, the latest first, and
	// says how many are held in all.
	HeldTxs(ctx context.Context, from string) ([]HeldTx, int, error)
	Review(ctx context.Context, from, alert, reason string) error
	Unblock(ctx context.Context, from, card, reason string) error
	// Block blocks a lost or stolen card: it goes on the organizer's
	// blocklist, which reaches the terminals offline.
	Block(ctx context.Context, from, card, reason string) error
	Card(ctx context.Context, from, card string) (Card, error)

	Terminals(ctx context.Context, from string) ([]Terminal, error)
	RegisterTerminal(ctx context.Context, from string, t NewTerminal) (Enrolment, error)
	RevokeTerminal(ctx context.Context, from, terminal string) error
	RevokeSessionKeys(ctx context.Context, from, terminal string) (int, error)

	// StoreDays reports each store's days from fromDay to toDay
	// (YYYY-MM-DD; empty is today).
	StoreDays(ctx context.Context, from, fromDay, toDay string) ([]StoreDay, error)
	// OneStoreDays is StoreDays of one store, as its members may see it.
	OneStoreDays(ctx context.Context, from, store, fromDay, toDay string) ([]StoreDay, error)
	Keys(ctx context.Context, from string) ([]Key, error)
	// Audit returns the organizer's audit records after the record id
	// after, oldest first.
	Audit(ctx context.Context, from string, after int64) ([]AuditEntry, error)
	// AuditExport writes the signed custody log export (a tar file) to w,
	// headers and all; before it has written anything it returns an error
	// the page explains.
	AuditExport(ctx context.Context, from string, w http.ResponseWriter) error
	// AuditVerify has the server export the custody log and verify it
	// (GET /v1/audit/verify).
	AuditVerify(ctx context.Context, from string) (Verification, error)
	Batches(ctx context.Context, from string) ([]Batch, error)
	// Refunds lists refunds, those waiting for a payout first, and says
	// how many wait in all.
	Refunds(ctx context.Context, from string) ([]Refund, int, error)
	// Payouts lists booked payout runs, newest first.
	Payouts(ctx context.Context, from string) ([]Payout, error)
	// RunPayout reviews the payout of the refunds that are due (plan
	// empty: a dry run that books nothing) or books the run whose dry run
	// answered plan (ErrConflict when it changed since).
	RunPayout(ctx context.Context, from string, d Debtor, plan string) (PayoutRun, error)
	// PayoutFile writes a booked run's pain.001 file to w, like
	// AuditExport.
	PayoutFile(ctx context.Context, from, payout string, w http.ResponseWriter) error
}

// Debtor is the organizer's bank account a payout pays from.
type Debtor struct {
	Name, IBAN, BIC string
}

// PayoutRun is a payout run: reviewed (Booked false) or booked.
type PayoutRun struct {
	Booked           bool
	ID, Plan         string
	Count            int
	Total, SEPATotal int64
	Waiting          int
	Lines            []PayoutLine
}

// PayoutLine is one refund of a payout run.
type PayoutLine struct {
	Refund, Card string
	Amount, SEPA int64
}

// Payout is a booked payout run.
type Payout struct {
	ID    string
	At    time.Time
	Count int
	Total int64
	File  bool // its pain.001 file is kept
}

// Refund is one refund: never its payee.
type Refund struct {
	ID, Card, Status string
	Amount           *int64 // fixed at payout
	RequestedAt      time.Time
}

// Batch is one card batch.
type Batch struct {
	No            int64
	Event, Status string
	Count, Done   int
	CreatedAt     time.Time
	CompletedAt   *time.Time
}

// StoreDay is one store's day: cash expected and counted, cards.
type StoreDay struct {
	Store                                  string
	Day                                    time.Time
	ExpectedCash                           int64
	CountedCash, Difference                *int64 // nil: the day is not closed
	CardsReceived, CardsSold, CardsInStock int64
	PendingLoads                           int64
}

// Key is one of the organizer's keys: never the key, its version and KCV.
type Key struct {
	Event, Kind, BaseKey, KCV string
}

// AuditEntry is one audit record.
type AuditEntry struct {
	ID                                     int64
	At                                     time.Time
	Actor, Action, Target, Remote, Outcome string
	Status                                 int
	Detail                                 string
}

// Verification is the custody log's verification: OK, or the first
// check that failed.
type Verification struct {
	OK                           bool
	At                           time.Time
	Entries, Size                int64
	Checkpoints                  int
	Root, Failure                string
	Checked                      []string
	OpenHandovers, Discrepancies int
}

// NewTerminal is a terminal to register.
type NewTerminal struct {
	ID, Merchant, Event string
	TTL                 time.Duration // zero: the API's default
}

// Enrolment is a registered terminal's one-time enrolment token: shown
// once, on the page that answers the registration.
type Enrolment struct {
	Terminal  string
	Token     Secret
	ExpiresAt time.Time
	Target    string // the path the terminal enrols at
}

// Dashboard is an event's figures, as the event report has them, and the
// organizer's terminals.
type Dashboard struct {
	Event          string
	Sales          []Sales
	Hourly         []HourSales
	TopUps         []TopUps
	CardsWithMoney int64
	Outstanding    int64
	PendingLoads   int64
	HeldTxs        int64
	OpenAlerts     int64
	Terminals      []Terminal
}

// Sales is one merchant's sales.
type Sales struct {
	Merchant      string
	Count, Amount int64
}

// HourSales is one merchant's sales in one hour.
type HourSales struct {
	Hour          time.Time
	Merchant      string
	Count, Amount int64
}

// TopUps is the money loaded through one channel, in one status.
type TopUps struct {
	Channel, Status string
	Count, Amount   int64
}

// Terminal is one terminal, when it last uploaded, how many session
// keys it holds, and what it last said waits in its queue: Queued
// transactions, the oldest since OldestUnsent (nil: none).
type Terminal struct {
	ID, Merchant, Event, Status string
	EnrolledAt, LastUpload      *time.Time
	SessionKeys                 int
	Queued                      int
	OldestUnsent                *time.Time
}

// SilentAfter is how long an active terminal may go without an upload
// before the pages point it out.
const SilentAfter = 20 * time.Minute

// Alert is one alert.
type Alert struct {
	Source       string // api or ledger
	ID           string // ledger alerts only
	Kind, State  string
	Blocking     bool
	Card         string
	Actor        string
	Detail       string
	RaisedAt     time.Time
	ReviewedBy   string
	ReviewReason string
}

// HeldTx is a terminal transaction the ledger holds instead of posting,
// and why.
type HeldTx struct {
	Terminal, Merchant, Card, Reason string
	Amount                           int64
	At, ReceivedAt                   time.Time
}

// Card is a card's status and history.
type Card struct {
	ID, Event, Status string
	Balance, Pending  int64
	Entries           []Entry
}

// Entry is one payment (negative) or top-up of a card's history.
type Entry struct {
	ID     string // a payment's transaction id, which a correction names
	At     time.Time
	TopUp  bool
	Where  string
	Amount int64
	Status string
}

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
	Keys(ctx context.Context, from string) ([]Key, error)
	// Audit returns the organizer's audit records after the record id
	// after, oldest first.
	Audit(ctx context.Context, from string, after int64) ([]AuditEntry, error)
	// AuditExport writes the signed custody log export (a tar file) to w,
	// headers and all; before it has written anything it returns an error
	// the page explains.
	AuditExport(ctx context.Context, from string, w http.ResponseWriter) error
	Batches(ctx context.Context, from string) ([]Batch, error)
	// Refunds lists refunds, those waiting for a payout first, and says
	// how many wait in all.
	Refunds(ctx context.Context, from string) ([]Refund, int, error)
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

// Terminal is one terminal, when it last uploaded and how many session
// keys it holds.
type Terminal struct {
	ID, Merchant, Event, Status string
	EnrolledAt, LastUpload      *time.Time
	SessionKeys                 int
}

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

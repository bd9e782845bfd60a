package pos

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
	_ "time/tzdata" // the organizers' zones wherever the till runs

	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/api/storeclient"
	"github.com/loopcard/loopcard/api/terminal"
	"github.com/loopcard/loopcard/personalize/reader"
)

// StoreOptions configure the store till's app.
type StoreOptions struct {
	// Client is the store client; Reader the till's card reader. Both
	// required.
	Client *storeclient.Client
	Reader reader.Reader
	// Deposit and Credit are the sale form's defaults, in cents.
	Deposit, Credit int64
	// TallyFile keeps the day's cash taken by this till (default: none
	// kept across restarts).
	TallyFile string
	Logger    *slog.Logger
	AnyHost   bool
	// Now is the clock of the day; nil is time.Now.
	Now func() time.Time
}

// Store is the store till's app. Create it with NewStore.
type Store struct {
	*app
	sc   *storeclient.Client
	o    StoreOptions
	mu   sync.Mutex
	tall tally
	// asked is when the rule of the business day was last asked for;
	// known is true once the server answered in this run.
	asked time.Time
	known bool
}

// tally is the cash this till took on one business day of the organizer
// (as the API's day close counts it), kept in TallyFile with the business
// day's rule as the server last told it, for use offline.
type tally struct {
	Day      string `json:"day"`
	Sales    int    `json:"sales"`
	SalesSum int64  `json:"sales_sum"`
	TopUps   int    `json:"topups"`
	TopUpSum int64  `json:"topups_sum"`
	// TimeZone and DayEndHour are the organizer's business day; until the
	// server told them, the contract's default (UTC, 06:00).
	TimeZone   string `json:"time_zone,omitempty"`
	DayEndHour *int   `json:"day_end_hour,omitempty"`
}

// defaultDayEndHour is an organizer's day-end hour until it sets one
// (ledger.DefaultDayEndHour).
const defaultDayEndHour = 6

// ruleEvery is how often the home page asks the server for the business
// day's rule, at most.
const ruleEvery = time.Minute

// storeHome is the home page's figures.
type storeHome struct {
	Deposit, Credit string
	Tally           tally
	Cash            int64
	Day             string
}

// storeOutcome is what a sale, top-up or balance check did.
type storeOutcome struct {
	Card, Number    string
	Deposit, Amount int64
	Write           *terminal.CardWrite
	Balance         *storeclient.Balance
	SettledEarlier  int
}

// dayClose is the close's answer.
type dayClose = apitype.DayCloseResponse

// NewStore returns the store till's app.
func NewStore(o StoreOptions) (*Store, error) {
	if o.Client == nil {
		return nil, errors.New("pos: a store client is required")
	}
	a, err := newApp("store", o.Reader, o.Logger, o.AnyHost, "store", "closed")
	if err != nil {
		return nil, err
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Store{app: a, sc: o.Client, o: o}
	if o.TallyFile != "" {
		if b, err := os.ReadFile(o.TallyFile); err == nil {
			_ = json.Unmarshal(b, &s.tall)
		}
	}
	m := a.mux
	m.HandleFunc("GET /{$}", s.home)
	m.HandleFunc("POST /sell", a.post(s.sell))
	m.HandleFunc("POST /topup", a.post(s.topUp))
	m.HandleFunc("POST /balance", a.post(s.balance))
	m.HandleFunc("POST /close", a.post(s.closeDay))
	m.HandleFunc("GET /present", func(w http.ResponseWriter, r *http.Request) { a.present(w, r, s.page(w, r, "present")) })
	m.HandleFunc("GET /result", func(w http.ResponseWriter, r *http.Request) { a.result(w, r, s.page(w, r, "done")) })
	m.HandleFunc("POST /new", a.post(func(w http.ResponseWriter, r *http.Request) {
		a.run.reset()
		http.Redirect(w, r, "/", http.StatusSeeOther)
	}))
	return s, nil
}

// today is the organizer's business day now (the local date of now -
// DayEndHour hours in TimeZone), YYYY-MM-DD. Call with s.mu held.
func (s *Store) today() string {
	loc, err := time.LoadLocation(s.tall.TimeZone)
	if err != nil || s.tall.TimeZone == "" {
		loc = time.UTC
	}
	h := defaultDayEndHour
	if s.tall.DayEndHour != nil {
		h = *s.tall.DayEndHour
	}
	return s.o.Now().Add(-time.Duration(h) * time.Hour).In(loc).Format(time.DateOnly)
}

// learnDay asks the server for the business day's rule (force: now;
// otherwise once a run, and after a failure again after ruleEvery) and
// keeps it with the tally.
func (s *Store) learnDay(ctx context.Context, force bool) {
	s.mu.Lock()
	if !force && (s.known || s.o.Now().Sub(s.asked) < ruleEvery) {
		s.mu.Unlock()
		return
	}
	s.asked = s.o.Now()
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	bd, err := storeclient.BusinessDay(ctx, s.sc.Config())
	if err != nil {
		s.log.Info("pos: business day not known from the server; the last one known is used", "err", err)
		return
	}
	if _, err := time.LoadLocation(bd.TimeZone); err != nil || bd.DayEndHour < 0 || bd.DayEndHour > 23 {
		s.log.Warn("pos: the server's business day does not parse", "time_zone", bd.TimeZone, "day_end_hour", bd.DayEndHour)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.known = true
	if s.tall.TimeZone != bd.TimeZone || s.tall.DayEndHour == nil || *s.tall.DayEndHour != bd.DayEndHour {
		h := bd.DayEndHour
		s.tall.TimeZone, s.tall.DayEndHour = bd.TimeZone, &h
		s.keep()
	}
}

// roll starts a new tally on a new business day. Call with s.mu held.
func (s *Store) roll() {
	if d := s.today(); s.tall.Day != d {
		s.tall = tally{Day: d, TimeZone: s.tall.TimeZone, DayEndHour: s.tall.DayEndHour}
	}
}

// day returns the tally of today, starting a new one on a new day.
func (s *Store) day() tally {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.roll()
	return s.tall
}

func (s *Store) count(sale bool, cash int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.roll()
	if sale {
		s.tall.Sales++
		s.tall.SalesSum += cash
	} else {
		s.tall.TopUps++
		s.tall.TopUpSum += cash
	}
	s.keep()
}

// keep writes the tally to TallyFile. Call with s.mu held.
func (s *Store) keep() {
	if s.o.TallyFile == "" {
		return
	}
	b, _ := json.Marshal(s.tall)
	tmp := s.o.TallyFile + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err == nil {
		err = os.Rename(tmp, s.o.TallyFile)
		if err != nil {
			s.log.Warn("pos: day tally not kept", "err", err)
		}
	}
}

func (s *Store) page(w http.ResponseWriter, r *http.Request, title string) *page {
	p := s.app.page(w, r, title)
	p.Online = true
	p.Open = len(s.sc.Open())
	return p
}

func (s *Store) home(w http.ResponseWriter, r *http.Request) {
	p := s.page(w, r, "storetitle")
	s.learnDay(r.Context(), false)
	t := s.day()
	p.Store = &storeHome{Deposit: euros(s.o.Deposit), Credit: euros(s.o.Credit), Tally: t, Cash: t.SalesSum + t.TopUpSum, Day: t.Day}
	s.render(w, "store", p)
}

// euros is cents as the forms show them: 12.50.
func euros(v int64) string {
	return money(English, v)[len("€ "):]
}

// storeErr is the message key (and the server's words) of a store
// client's error.
func storeErr(err error) (string, string) {
	var he *storeclient.HTTPError
	if errors.As(err, &he) {
		if he.Status >= 500 {
			return "err.offline", ""
		}
		return "err.refused", he.Message
	}
	k := cardErr(err)
	if k == "err.card" || k == "err.timeout" {
		var ue interface{ Timeout() bool }
		if errors.As(err, &ue) || errors.Is(err, context.DeadlineExceeded) {
			return "err.offline", ""
		}
	}
	return k, ""
}

func (s *Store) amounts(w http.ResponseWriter, r *http.Request, fields ...string) ([]int64, bool) {
	var out []int64
	for _, f := range fields {
		v, ok := parseEuros(r.PostForm.Get(f))
		if !ok {
			p := s.page(w, r, "storetitle")
			p.Error = "badamount"
			w.WriteHeader(http.StatusBadRequest)
			s.render(w, "result", p)
			return nil, false
		}
		out = append(out, v)
	}
	return out, true
}

func (s *Store) sell(w http.ResponseWriter, r *http.Request) {
	v, ok := s.amounts(w, r, "deposit", "credit")
	if !ok {
		return
	}
	deposit, credit := v[0], v[1]
	err := s.run.start("sell", deposit+credit, func(ctx context.Context, card terminal.Card) outcome {
		res, err := s.sc.Sell(ctx, card, deposit, credit)
		if err != nil {
			k, d := storeErr(err)
			return outcome{Err: k, Detail: d}
		}
		s.count(true, deposit+credit)
		return outcome{OK: true, Store: moneyOutcome(res)}
	})
	s.started(w, r, err)
}

func (s *Store) topUp(w http.ResponseWriter, r *http.Request) {
	v, ok := s.amounts(w, r, "amount")
	if !ok {
		return
	}
	if v[0] <= 0 {
		p := s.page(w, r, "storetitle")
		p.Error = "badamount"
		w.WriteHeader(http.StatusBadRequest)
		s.render(w, "result", p)
		return
	}
	amount := v[0]
	err := s.run.start("topup", amount, func(ctx context.Context, card terminal.Card) outcome {
		res, err := s.sc.TopUp(ctx, card, amount)
		if err != nil {
			k, d := storeErr(err)
			return outcome{Err: k, Detail: d}
		}
		s.count(false, amount)
		return outcome{OK: true, Store: moneyOutcome(res)}
	})
	s.started(w, r, err)
}

func moneyOutcome(res storeclient.Result) *storeOutcome {
	o := &storeOutcome{Card: res.Request.Card, Deposit: res.Request.Deposit, Amount: res.Request.Amount, SettledEarlier: len(res.Settled)}
	if res.Load != nil {
		o.Write = res.Load.Write
	}
	return o
}

func (s *Store) balance(w http.ResponseWriter, r *http.Request) {
	err := s.run.start("balance", 0, func(ctx context.Context, card terminal.Card) outcome {
		b, err := s.sc.Balance(ctx, card)
		if err != nil {
			k, d := storeErr(err)
			return outcome{Err: k, Detail: d}
		}
		return outcome{OK: true, Balance: &b.OnCard, Store: &storeOutcome{Card: b.Card, Number: b.Number, Balance: &b}}
	})
	s.started(w, r, err)
}

func (s *Store) started(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errBusy) {
		p := s.page(w, r, "present")
		p.Error = "busy"
		w.WriteHeader(http.StatusConflict)
		s.render(w, "result", p)
		return
	}
	http.Redirect(w, r, "/present", http.StatusSeeOther)
}

// closeDay closes the organizer's business day now with the counted cash: the API answers what it
// expected.
func (s *Store) closeDay(w http.ResponseWriter, r *http.Request) {
	v, ok := s.amounts(w, r, "counted")
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
	defer cancel()
	// The close is online anyway: the rule of the business day first.
	s.learnDay(ctx, true)
	s.mu.Lock()
	day := s.today()
	s.mu.Unlock()
	d, err := storeclient.CloseDay(ctx, s.sc.Config(), day, v[0])
	p := s.page(w, r, "closed")
	if err != nil {
		k, detail := storeErr(err)
		p.Title, p.Error, p.Result = "closeday", k, &outcome{Kind: "close", Err: k, Detail: detail}
		w.WriteHeader(http.StatusBadGateway)
		s.render(w, "result", p)
		return
	}
	p.Close = &d
	s.render(w, "closed", p)
}

// TallyFile is the name of the day's tally in a store client's state
// directory.
func TallyFile(stateDir string) string { return filepath.Join(stateDir, "pos-day.json") }

package pos

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/loopcard/loopcard/api/terminal"
	"github.com/loopcard/loopcard/personalize/reader"
)

// BarOptions configure the bar terminal's app.
type BarOptions struct {
	// Till is the terminal; Reader its card reader. Both required.
	Till   Till
	Reader reader.Reader
	Logger *slog.Logger
	// AnyHost answers requests naming any host (the app listens beyond
	// loopback); the default answers loopback names only.
	AnyHost bool
	// Now is the clock of the queue's age; nil is time.Now.
	Now func() time.Time
}

// Bar is the bar terminal's app. Create it with NewBar.
type Bar struct {
	*app
	till Till
	now  func() time.Time

	mu     sync.Mutex
	basket []Line
}

// maxLines and maxQty bound a basket.
const (
	maxLines = 50
	maxQty   = 99
)

// NewBar returns the bar terminal's app.
func NewBar(o BarOptions) (*Bar, error) {
	if o.Till == nil {
		return nil, errors.New("pos: a Till is required")
	}
	a, err := newApp("bar", o.Reader, o.Logger, o.AnyHost, "sale", "recent", "balance")
	if err != nil {
		return nil, err
	}
	b := &Bar{app: a, till: o.Till, now: o.Now}
	if b.now == nil {
		b.now = time.Now
	}
	m := a.mux
	m.HandleFunc("GET /{$}", b.sale)
	m.HandleFunc("POST /basket", a.post(b.editBasket))
	m.HandleFunc("POST /charge", a.post(b.charge))
	m.HandleFunc("GET /present", func(w http.ResponseWriter, r *http.Request) { a.present(w, r, b.page(w, r, "present")) })
	m.HandleFunc("GET /result", func(w http.ResponseWriter, r *http.Request) { a.result(w, r, b.page(w, r, "done")) })
	m.HandleFunc("POST /new", a.post(b.newSale))
	m.HandleFunc("POST /void", a.post(b.void))
	m.HandleFunc("GET /recent", b.recent)
	m.HandleFunc("GET /balance", func(w http.ResponseWriter, r *http.Request) { a.render(w, "balance", b.page(w, r, "checkbalance")) })
	m.HandleFunc("POST /balance", a.post(b.balance))
	return b, nil
}

// page adds the terminal's status line.
func (b *Bar) page(w http.ResponseWriter, r *http.Request, title string) *page {
	p := b.app.page(w, r, title)
	p.Online = b.till.Online()
	n, oldest := b.till.Unsent()
	p.Unsent = n
	if n > 0 {
		p.Oldest = age(b.now().Sub(oldest))
	}
	return p
}

func (b *Bar) sale(w http.ResponseWriter, r *http.Request) {
	p := b.page(w, r, "sale")
	if m, ok := b.till.Menu(); ok {
		p.Menu = true
		for _, c := range categories(m) {
			name := c
			if name == "" {
				name = p.T["other"]
			}
			p.Categories = append(p.Categories, category{Name: name, Products: inCategory(m, c)})
		}
	}
	b.mu.Lock()
	p.Basket = append([]Line(nil), b.basket...)
	b.mu.Unlock()
	p.Total = Total(p.Basket)
	b.render(w, "sale", p)
}

// editBasket adds a product (op=add), a returned deposit item (op=return),
// takes one off a line (op=less), or empties the basket (op=clear).
func (b *Bar) editBasket(w http.ResponseWriter, r *http.Request) {
	op, id := r.PostForm.Get("op"), r.PostForm.Get("product")
	b.mu.Lock()
	defer func() {
		b.mu.Unlock()
		http.Redirect(w, r, "/", http.StatusSeeOther)
	}()
	if op == "clear" {
		b.basket = nil
		return
	}
	m, ok := b.till.Menu()
	if !ok {
		return
	}
	p, ok := m.Product(id)
	if !ok {
		return
	}
	sign := int32(1)
	switch op {
	case "add":
	case "return":
		if !p.Deposit {
			return
		}
		sign = -1
	case "less", "lessreturn":
		if op == "lessreturn" {
			sign = -1
		}
		for i, l := range b.basket {
			if l.Product.ID == id && (l.Qty > 0) == (sign > 0) {
				l.Qty -= sign
				b.basket[i] = l
				if l.Qty == 0 {
					b.basket = append(b.basket[:i], b.basket[i+1:]...)
				}
				return
			}
		}
		return
	default:
		return
	}
	for i, l := range b.basket {
		if l.Product.ID == id && (l.Qty > 0) == (sign > 0) {
			if l.Qty*sign < maxQty {
				b.basket[i].Qty += sign
			}
			return
		}
	}
	if len(b.basket) < maxLines {
		b.basket = append(b.basket, Line{Product: p, Qty: sign})
	}
}

// charge starts the basket's payment (or its deposit return) and shows
// "present the card".
func (b *Bar) charge(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	lines := append([]Line(nil), b.basket...)
	b.mu.Unlock()
	total := Total(lines)
	if len(lines) == 0 || total == 0 {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	kind := KindPayment
	if total < 0 {
		kind = KindReturn
	}
	err := b.run.start(kind, total, func(ctx context.Context, card terminal.Card) outcome {
		var rc Receipt
		var err error
		if total > 0 {
			rc, err = b.till.Pay(ctx, card, lines)
		} else {
			rc, err = b.till.ReturnDeposit(ctx, card, lines)
		}
		if err != nil {
			k, d := barErr(err)
			out := outcome{Err: k, Detail: d}
			if errors.Is(err, terminal.ErrInsufficient) {
				if bal, berr := b.till.Balance(ctx, card); berr == nil {
					out.Balance = &bal
				}
			}
			return out
		}
		b.mu.Lock()
		b.basket = nil
		b.mu.Unlock()
		return outcome{OK: true, Receipt: &rc}
	})
	b.started(w, r, err)
}

func (b *Bar) started(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errBusy) {
		p := b.page(w, r, "present")
		p.Error = "busy"
		w.WriteHeader(http.StatusConflict)
		b.render(w, "result", p)
		return
	}
	http.Redirect(w, r, "/present", http.StatusSeeOther)
}

// newSale leaves the result page for an empty sale.
func (b *Bar) newSale(w http.ResponseWriter, r *http.Request) {
	b.run.reset()
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// void gives the last payment back to its card, presented again.
func (b *Bar) void(w http.ResponseWriter, r *http.Request) {
	err := b.run.start(KindVoid, 0, func(ctx context.Context, card terminal.Card) outcome {
		rc, err := b.till.VoidLast(ctx, card)
		if err != nil {
			k, d := barErr(err)
			return outcome{Err: k, Detail: d}
		}
		return outcome{OK: true, Receipt: &rc}
	})
	b.started(w, r, err)
}

func (b *Bar) balance(w http.ResponseWriter, r *http.Request) {
	err := b.run.start("balance", 0, func(ctx context.Context, card terminal.Card) outcome {
		bal, err := b.till.Balance(ctx, card)
		if err != nil {
			return outcome{Err: cardErr(err)}
		}
		return outcome{OK: true, Balance: &bal}
	})
	b.started(w, r, err)
}

func (b *Bar) recent(w http.ResponseWriter, r *http.Request) {
	p := b.page(w, r, "recent")
	p.Recent = b.till.Recent(maxRecent)
	b.render(w, "recent", p)
}

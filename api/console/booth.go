package console

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The info booth's pages (issue 21): corrections of posted payments (the
// list, one issued for a payment of a card's history, approval by a
// second HQ person) and vouchers (batches issued, their codes shown once).

// ErrSamePerson: a correction is approved by another HQ person than the
// one who asked for it.
var ErrSamePerson = errors.New("console: approved by another person than who asked")

// InfoBooth is what the info booth's pages need of the Backend: each call
// is one request through the API, as the signed-in staff member.
type InfoBooth interface {
	Corrections(ctx context.Context, from string) ([]Correction, error)
	// RequestCorrection corrects a payment; idem makes a form sent twice
	// one correction.
	RequestCorrection(ctx context.Context, from, idem string, c NewCorrection) (Correction, error)
	// ApproveCorrection fails with ErrSamePerson for the one who asked.
	ApproveCorrection(ctx context.Context, from, id string) error
	VoucherBatches(ctx context.Context, from string) ([]VoucherBatch, error)
	// IssueVouchers issues a batch; its codes are answered this once.
	IssueVouchers(ctx context.Context, from string, v NewVouchers) (IssuedVouchers, error)
}

// Correction is a correction of a posted payment.
type Correction struct {
	ID, Payment, Card, Merchant string
	Amount, NonRefundable       int64
	Reason, Status              string
	RequestedBy, ApprovedBy     string
	RequestedAt                 time.Time
}

// NewCorrection is a correction to ask for.
type NewCorrection struct {
	Payment string
	Amount  int64
	Reason  string
}

// VoucherBatch is an issued batch of vouchers: never its codes.
type VoucherBatch struct {
	ID, Event, Label, CreatedBy string
	Amount                      int64
	Count, Redeemed             int
	Expires, CreatedAt          time.Time
}

// NewVouchers is a batch of vouchers to issue.
type NewVouchers struct {
	Event   string
	Amount  int64
	Count   int
	Expires time.Time
	Label   string
}

// IssuedVouchers is an issued batch with its codes, shown once.
type IssuedVouchers struct {
	Batch   string
	Amount  int64
	Expires time.Time
	Codes   []Secret
}

// booth is what the info booth's templates get.
type booth struct {
	Corrections []Correction
	Form        correctionForm
	Batches     []VoucherBatch
	Issued      *IssuedVouchers
	Vouchers    voucherForm
}

type correctionForm struct {
	Payment, Card, Amount, Reason string
	Idem                          string // the form's idempotency key
}

type voucherForm struct {
	Event, Amount, Count, Expires, Label string
}

// boothMessages are the info booth's texts, as messages (English, then
// Dutch).
var boothMessages = map[string][2]string{
	"correctionsnav":      {"Corrections", "Correcties"},
	"correct":             {"Correct", "Corrigeren"},
	"correctionhint":      {"A correction gives back part or all of a posted payment: it is charged back to the merchant and reaches the card as a load at its next write. Above the organizer's threshold another HQ person approves it. Voucher credit the payment spent comes back as voucher credit.", "Een correctie geeft een deel of alles van een geboekte betaling terug: ze wordt teruggeboekt bij het verkooppunt en komt bij de volgende schrijfactie als opwaardering op de kaart. Boven de drempel van de organisator keurt een andere HQ-medewerker haar goed. Voucherkrediet dat de betaling gebruikte, komt terug als voucherkrediet."},
	"newcorrection":       {"Correct a payment", "Een betaling corrigeren"},
	"paymentid":           {"Payment (transaction id, from the card's history)", "Betaling (transactie-id, uit de geschiedenis van de kaart)"},
	"amounteuro":          {"Amount in euros (such as 4.50)", "Bedrag in euro (zoals 4,50)"},
	"requestedby":         {"Asked by", "Gevraagd door"},
	"approvedby":          {"Approved by", "Goedgekeurd door"},
	"nonrefundable":       {"Of which voucher credit", "Waarvan voucherkrediet"},
	"approve":             {"Approve", "Goedkeuren"},
	"correctionwaits":     {"Done: the correction waits for another HQ person's approval.", "Gedaan: de correctie wacht op goedkeuring door een andere HQ-medewerker."},
	"vouchersnav":         {"Vouchers", "Vouchers"},
	"voucherhint":         {"Voucher credit is spent before money, never refunded, and what is left becomes breakage. The codes are shown once, when issued: print them or download them now.", "Voucherkrediet wordt voor geld besteed, nooit terugbetaald, en wat overblijft vervalt. De codes worden één keer getoond, bij uitgifte: druk ze nu af of download ze."},
	"issuevouchers":       {"Issue a batch of vouchers", "Een reeks vouchers uitgeven"},
	"vouchercount":        {"Number of vouchers (1 to 10,000)", "Aantal vouchers (1 tot 10.000)"},
	"validuntil":          {"Valid until (YYYY-MM-DD, end of day UTC)", "Geldig tot en met (JJJJ-MM-DD, einde van de dag UTC)"},
	"label":               {"What for (such as crew drinks)", "Waarvoor (zoals crewdrankjes)"},
	"issueshow":           {"Issue and show the codes", "Uitgeven en de codes tonen"},
	"issuefile":           {"Issue and download the codes", "Uitgeven en de codes downloaden"},
	"voucherbatches":      {"Voucher batches", "Voucherreeksen"},
	"redeemed":            {"Redeemed", "Ingewisseld"},
	"codesonce":           {"The codes of the new batch, shown only now: print them", "De codes van de nieuwe reeks, alleen nu getoond: druk ze af"},
	"err.correction":      {"Not possible, nothing was changed: the payment's corrections would exceed it, the payment is held, the card's refund was paid out, or the merchant's account holds too little.", "Niet mogelijk, er is niets gewijzigd: de correcties van de betaling zouden haar overschrijden, de betaling wordt vastgehouden, de terugbetaling van de kaart is al uitbetaald, of het verkooppunt heeft te weinig saldo."},
	"err.correctioninput": {"Check what you entered: a payment's transaction id, a positive amount in euros and a reason of 1 to 500 characters.", "Controleer de invoer: het transactie-id van een betaling, een positief bedrag in euro en een reden van 1 tot 500 tekens."},
	"err.sameperson":      {"A correction is approved by another HQ person than who asked for it: nothing was changed.", "Een correctie wordt goedgekeurd door een andere HQ-medewerker dan wie haar vroeg: er is niets gewijzigd."},
	"err.voucherinput":    {"Check what you entered: an event, a positive amount in euros, 1 to 10,000 vouchers and a day in the future.", "Controleer de invoer: een evenement, een positief bedrag in euro, 1 tot 10.000 vouchers en een dag in de toekomst."},
}

// boothPages are the info booth's templates.
var boothPages = []string{"corrections", "vouchers"}

// infoBooth registers the info booth's pages on m, when the backend has
// them.
func (h *Handler) infoBooth(m *http.ServeMux) error {
	b, ok := h.be.(InfoBooth)
	if !ok {
		return nil
	}
	for _, name := range boothPages {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return fmt.Errorf("console: template %s: %w", name, err)
		}
		h.pages[name] = t
	}
	m.HandleFunc("GET /console/corrections", func(w http.ResponseWriter, r *http.Request) { h.corrections(b, w, r) })
	m.HandleFunc("POST /console/corrections", func(w http.ResponseWriter, r *http.Request) { h.requestCorrection(b, w, r) })
	m.HandleFunc("POST /console/corrections/{correction}/approve", func(w http.ResponseWriter, r *http.Request) { h.approveCorrection(b, w, r) })
	m.HandleFunc("GET /console/vouchers", func(w http.ResponseWriter, r *http.Request) { h.vouchers(b, w, r) })
	m.HandleFunc("POST /console/vouchers", func(w http.ResponseWriter, r *http.Request) { h.issueVouchers(b, w, r) })
	return nil
}

// newIdem is a fresh idempotency key (a random UUID) for a form.
func newIdem() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

var (
	uuidText = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	euros    = regexp.MustCompile(`^([0-9]{1,7})(?:[.,]([0-9]{1,2}))?$`)
)

// parseEuros reads an amount typed in euros ("4", "4.5", "4,50") as cents.
func parseEuros(s string) (int64, bool) {
	m := euros.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, false
	}
	units, _ := strconv.ParseInt(m[1], 10, 64)
	var cents int64
	if m[2] != "" {
		cents, _ = strconv.ParseInt((m[2] + "0")[:2], 10, 64)
	}
	total := units*100 + cents
	return total, total > 0
}

func (h *Handler) corrections(b InfoBooth, w http.ResponseWriter, r *http.Request) {
	p := h.newPage(w, r, "correctionsnav")
	ctx, ok := h.signedIn(w, r, p)
	if !ok {
		return
	}
	q := r.URL.Query()
	p.Booth = &booth{Form: correctionForm{Payment: q.Get("payment"), Card: q.Get("card"), Amount: q.Get("amount"), Idem: newIdem()}}
	switch q.Get("done") {
	case "":
	case "approval":
		p.Notice = "correctionwaits"
	default:
		p.Notice = "done"
	}
	h.showCorrections(ctx, b, w, r, p, http.StatusOK)
}

func (h *Handler) showCorrections(ctx context.Context, b InfoBooth, w http.ResponseWriter, r *http.Request, p *page, status int) {
	cs, err := b.Corrections(ctx, r.RemoteAddr)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	cs, p.More = firstRows(cs)
	p.Booth.Corrections = cs
	h.render(w, status, "corrections", p)
}

// requestCorrection asks for a correction of a payment (POST
// /v1/hq/corrections with the form's idempotency key): posted at once
// within the organizer's threshold, else awaiting approval.
func (h *Handler) requestCorrection(b InfoBooth, w http.ResponseWriter, r *http.Request) {
	p := h.newPage(w, r, "correctionsnav")
	if !h.posted(w, r, p) {
		return
	}
	ctx, ok := h.signedIn(w, r, p)
	if !ok {
		return
	}
	f := r.PostForm
	form := correctionForm{Payment: strings.ToLower(strings.TrimSpace(f.Get("payment"))), Card: f.Get("card"), Amount: f.Get("amount"),
		Reason: f.Get("reason"), Idem: f.Get("idem")}
	p.Booth = &booth{Form: form}
	amount, okAmount := parseEuros(form.Amount)
	if !okAmount || !uuidText.MatchString(form.Payment) || !uuidText.MatchString(form.Idem) {
		p.Error = "err.correctioninput"
		h.showCorrections(ctx, b, w, r, p, http.StatusBadRequest)
		return
	}
	c, err := b.RequestCorrection(ctx, r.RemoteAddr, form.Idem, NewCorrection{Payment: form.Payment, Amount: amount, Reason: form.Reason})
	switch {
	case errors.Is(err, ErrConflict):
		p.Error = "err.correction"
		h.showCorrections(ctx, b, w, r, p, http.StatusConflict)
		return
	case errors.Is(err, ErrInvalid):
		p.Error = "err.correctioninput"
		h.showCorrections(ctx, b, w, r, p, http.StatusBadRequest)
		return
	case err != nil:
		h.fail(w, r, p, err)
		return
	}
	done := "1"
	if c.Status == "awaiting_approval" {
		done = "approval"
	}
	http.Redirect(w, r, "/console/corrections?done="+done, http.StatusSeeOther)
}

func (h *Handler) approveCorrection(b InfoBooth, w http.ResponseWriter, r *http.Request) {
	p := h.newPage(w, r, "correctionsnav")
	if !h.posted(w, r, p) {
		return
	}
	ctx, ok := h.signedIn(w, r, p)
	if !ok {
		return
	}
	err := b.ApproveCorrection(ctx, r.RemoteAddr, r.PathValue("correction"))
	switch {
	case errors.Is(err, ErrSamePerson):
		p.Error = "err.sameperson"
		h.render(w, http.StatusForbidden, "message", p)
		return
	case errors.Is(err, ErrConflict):
		p.Error = "err.correction"
		h.render(w, http.StatusConflict, "message", p)
		return
	case err != nil:
		h.fail(w, r, p, err)
		return
	}
	http.Redirect(w, r, "/console/corrections?done=1", http.StatusSeeOther)
}

func (h *Handler) vouchers(b InfoBooth, w http.ResponseWriter, r *http.Request) {
	p := h.newPage(w, r, "vouchersnav")
	ctx, ok := h.signedIn(w, r, p)
	if !ok {
		return
	}
	p.Booth = &booth{Vouchers: voucherForm{Count: "10", Expires: h.now().UTC().AddDate(0, 0, 7).Format(time.DateOnly)}}
	h.showVouchers(ctx, b, w, r, p, http.StatusOK)
}

func (h *Handler) showVouchers(ctx context.Context, b InfoBooth, w http.ResponseWriter, r *http.Request, p *page, status int) {
	bs, err := b.VoucherBatches(ctx, r.RemoteAddr)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	bs, p.More = firstRows(bs)
	p.Booth.Batches = bs
	if p.Staff.Role == "hq" {
		if p.Events, err = h.be.Events(ctx, r.RemoteAddr); err != nil {
			h.fail(w, r, p, err)
			return
		}
	}
	h.render(w, status, "vouchers", p)
}

// issueVouchers issues a batch of vouchers (POST /v1/hq/vouchers) and
// shows their codes on the page that answers, or, asked for a file,
// answers them as a text file to print: once, as the API does; they are
// not kept.
func (h *Handler) issueVouchers(b InfoBooth, w http.ResponseWriter, r *http.Request) {
	p := h.newPage(w, r, "vouchersnav")
	if !h.posted(w, r, p) {
		return
	}
	ctx, ok := h.signedIn(w, r, p)
	if !ok {
		return
	}
	f := r.PostForm
	form := voucherForm{Event: f.Get("event"), Amount: f.Get("amount"), Count: f.Get("count"), Expires: f.Get("expires"), Label: f.Get("label")}
	p.Booth = &booth{Vouchers: form}
	amount, okAmount := parseEuros(form.Amount)
	count, errCount := strconv.Atoi(strings.TrimSpace(form.Count))
	day, errDay := time.Parse(time.DateOnly, strings.TrimSpace(form.Expires))
	if !okAmount || errCount != nil || count < 1 || count > 10000 || errDay != nil {
		p.Error = "err.voucherinput"
		h.showVouchers(ctx, b, w, r, p, http.StatusBadRequest)
		return
	}
	// Valid to the end of the day named, UTC.
	iss, err := b.IssueVouchers(ctx, r.RemoteAddr, NewVouchers{Event: form.Event, Amount: amount, Count: count,
		Expires: day.Add(24*time.Hour - time.Second), Label: form.Label})
	switch {
	case errors.Is(err, ErrInvalid):
		p.Error = "err.voucherinput"
		h.showVouchers(ctx, b, w, r, p, http.StatusBadRequest)
		return
	case err != nil:
		h.fail(w, r, p, err)
		return
	}
	if f.Get("as") == "file" {
		var sb strings.Builder
		fmt.Fprintf(&sb, "# Loopcard vouchers, batch %s: %s each, valid until %s UTC\n", iss.Batch, money(English, iss.Amount),
			iss.Expires.UTC().Format("2006-01-02 15:04"))
		for _, c := range iss.Codes {
			sb.WriteString(c.Reveal())
			sb.WriteByte('\n')
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="vouchers-`+url.PathEscape(iss.Batch)+`.txt"`)
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(sb.String()))
		return
	}
	p.Booth.Issued = &iss
	p.Booth.Vouchers = voucherForm{Count: "10", Expires: form.Expires}
	h.showVouchers(ctx, b, w, r, p, http.StatusCreated)
}

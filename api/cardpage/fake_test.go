package cardpage_test

import (
	"context"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/loopcard/loopcard/api/cardpage"
)

// fakeBackend is a Backend in memory, for the pages' own tests; the real
// API is tested in integration_test.go and browser_test.go.
type fakeBackend struct {
	mu       sync.Mutex
	token    string
	pin      string
	email    string
	password string
	session  string
	claimed  bool
	failures int
	refunds  []cardpage.Payout
	blocked  []string // reasons
	// voucherUsed: fakeVoucher was redeemed.
	voucherUsed bool
	erased      bool
	loggedOut   bool
	calls       int
}

const (
	fakeToken    = "AAECAwQFBgcICQoLDA0ODw"
	fakePIN      = "123456"
	fakeSession  = "lc1_1_sessionsecretsessionsecret"
	fakePassword = "correct horse battery"
)

func newFake() *fakeBackend {
	return &fakeBackend{token: fakeToken, pin: fakePIN, session: fakeSession}
}

var fakeTime = time.Date(2026, 7, 4, 21, 30, 0, 0, time.UTC)

func (f *fakeBackend) card(tok cardpage.Secret) (cardpage.Card, error) {
	f.calls++
	if tok.Reveal() != f.token {
		return cardpage.Card{}, cardpage.ErrUnknownCard
	}
	return cardpage.Card{ID: "04A1B2C3D40000", Event: "fest", Status: "active", Balance: 1250, Pending: 500, PendingCount: 1, Claimed: f.claimed}, nil
}

func (f *fakeBackend) checkPIN(pin cardpage.Secret) error {
	switch {
	case len(pin.Reveal()) != 6:
		return cardpage.ErrPINFormat
	case f.failures >= 5:
		return cardpage.ErrLocked
	case pin.Reveal() != f.pin:
		f.failures++
		return cardpage.ErrWrongPIN
	}
	f.failures = 0
	return nil
}

func (f *fakeBackend) Card(_ context.Context, _ string, tok cardpage.Secret) (cardpage.Card, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.card(tok)
}

func (f *fakeBackend) History(_ context.Context, _ string, tok, pin cardpage.Secret) (cardpage.History, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.card(tok)
	if err != nil {
		return cardpage.History{}, err
	}
	if f.claimed {
		return cardpage.History{}, cardpage.ErrClaimed
	}
	if err := f.checkPIN(pin); err != nil {
		return cardpage.History{}, err
	}
	return cardpage.History{Card: c, Entries: []cardpage.Entry{
		{At: fakeTime, Where: "bar", Amount: -350, Status: "accepted"},
		{At: fakeTime.Add(-time.Hour), TopUp: true, Where: "cash", Amount: 1600, Status: "loaded"},
	}}, nil
}

func (f *fakeBackend) Refund(_ context.Context, _ string, tok, pin cardpage.Secret, p cardpage.Payout) (cardpage.RefundReceipt, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.card(tok); err != nil {
		return cardpage.RefundReceipt{}, err
	}
	if err := f.checkPIN(pin); err != nil {
		return cardpage.RefundReceipt{}, err
	}
	if len(f.refunds) > 0 {
		return cardpage.RefundReceipt{}, cardpage.ErrRefundExists
	}
	f.refunds = append(f.refunds, p)
	return cardpage.RefundReceipt{ID: "r1", Amount: 1250}, nil
}

func (f *fakeBackend) Block(_ context.Context, _ string, tok, pin cardpage.Secret, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.card(tok); err != nil {
		return err
	}
	if err := f.checkPIN(pin); err != nil {
		return err
	}
	f.blocked = append(f.blocked, reason)
	return nil
}

func (f *fakeBackend) ProfileBlock(_ context.Context, _ string, s cardpage.Secret, card, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.profile(s); err != nil {
		return err
	}
	f.blocked = append(f.blocked, reason)
	return nil
}

func (f *fakeBackend) Claim(_ context.Context, _ string, tok, pin cardpage.Secret, c cardpage.Credentials) (cardpage.Secret, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.card(tok); err != nil {
		return cardpage.Secret{}, err
	}
	if err := f.checkPIN(pin); err != nil {
		return cardpage.Secret{}, err
	}
	if len(c.Password.Reveal()) < 10 {
		return cardpage.Secret{}, cardpage.ErrInvalid
	}
	f.claimed, f.email, f.password = true, c.Email, c.Password.Reveal()
	return cardpage.NewSecret(f.session), nil
}

func (f *fakeBackend) Login(_ context.Context, _ string, tok cardpage.Secret, c cardpage.Credentials) (cardpage.Secret, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.card(tok); err != nil {
		return cardpage.Secret{}, err
	}
	if f.erased || c.Email != f.email || c.Password.Reveal() != f.password {
		return cardpage.Secret{}, cardpage.ErrLoginFailed
	}
	return cardpage.NewSecret(f.session), nil
}

func (f *fakeBackend) profile(s cardpage.Secret) (cardpage.Profile, error) {
	if f.erased || s.Reveal() != f.session {
		return cardpage.Profile{}, cardpage.ErrSessionEnded
	}
	c, _ := f.card(cardpage.NewSecret(f.token))
	return cardpage.Profile{Email: f.email, Since: fakeTime, Cards: []cardpage.History{{Card: c}}}, nil
}

func (f *fakeBackend) Profile(_ context.Context, _ string, s cardpage.Secret) (cardpage.Profile, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.profile(s)
}

func (f *fakeBackend) ProfileRefund(_ context.Context, _ string, s cardpage.Secret, card string, p cardpage.Payout) (cardpage.RefundReceipt, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.profile(s); err != nil {
		return cardpage.RefundReceipt{}, err
	}
	f.refunds = append(f.refunds, p)
	return cardpage.RefundReceipt{ID: "r2", Amount: 1250}, nil
}

func (f *fakeBackend) Export(_ context.Context, _ string, s cardpage.Secret) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.profile(s); err != nil {
		return nil, err
	}
	return []byte(`{"email": "` + f.email + `"}`), nil
}

func (f *fakeBackend) Erase(_ context.Context, _ string, s cardpage.Secret) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.profile(s); err != nil {
		return err
	}
	f.erased, f.claimed = true, false
	return nil
}

func (f *fakeBackend) Logout(_ context.Context, _ string, s cardpage.Secret) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.Reveal() != f.session {
		return cardpage.ErrSessionEnded
	}
	f.loggedOut = true
	return nil
}

func (f *fakeBackend) StartTopUp(_ context.Context, _ string, tok cardpage.Secret, amount int64, origin string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.card(tok); err != nil {
		return "", err
	}
	return "https://pay.example/checkout?amount=" + strconv.FormatInt(amount, 10) + "&return=" + url.QueryEscape(cardpage.ReturnURL(origin, fakeCheckout)), nil
}

// fakeCheckout is the checkout id of every top-up of the fake.
const fakeCheckout = "chk-1"

func (f *fakeBackend) TopUpCard(_ context.Context, checkout string, tok cardpage.Secret) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.card(tok); err != nil || checkout != fakeCheckout {
		return cardpage.ErrUnknownCheckout
	}
	return nil
}

// fakeVoucher is the one voucher code the fake knows, worth 300, used once.
const fakeVoucher = "ABCD-EFGH-JKLM-NPQR"

func (f *fakeBackend) RedeemVoucher(_ context.Context, _ string, tok, code cardpage.Secret) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.card(tok); err != nil {
		return 0, err
	}
	if code.Reveal() != fakeVoucher || f.voucherUsed {
		return 0, cardpage.ErrVoucher
	}
	f.voucherUsed = true
	return 300, nil
}

func (f *fakeBackend) SetAutoTopUp(_ context.Context, _ string, s cardpage.Secret, card string, a cardpage.AutoTopUp, origin string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.profile(s); err != nil {
		return "", err
	}
	return "https://pay.example/setup?back=" + url.QueryEscape(cardpage.AutoTopUpReturnURL(origin)), nil
}

func (f *fakeBackend) StopAutoTopUp(_ context.Context, _ string, s cardpage.Secret, card string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, err := f.profile(s)
	return err
}

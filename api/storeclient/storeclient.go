package storeclient

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/api/internal/fsync"
	"github.com/loopcard/loopcard/api/keydelivery"
	"github.com/loopcard/loopcard/api/terminal"
	"github.com/loopcard/loopcard/keys/keyderiv"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
	"github.com/loopcard/loopcard/personalize"
	"github.com/loopcard/loopcard/personalize/desfire"
	"github.com/loopcard/loopcard/personalize/handover"
)

// Files of the state directory.
const (
	KexFile     = "kex.json"      // the key-agreement key (0600)
	JournalFile = "journal.jsonl" // money requests and their outcome
)

// Config configures a store client. URL, HTTP, Org, Store and Token are
// needed by every call; StateDir by Open.
type Config struct {
	StateDir string
	URL      string
	HTTP     *http.Client
	Org      int64
	Store    string
	// Token is the store's bearer token; it is sent to the API only.
	Token  string
	Layout personalize.Layout
	Logger *slog.Logger
	Now    func() time.Time
}

func (c *Config) defaults() error {
	if c.Layout.Keys == nil {
		c.Layout = personalize.DefaultLayout()
	}
	if c.HTTP == nil {
		c.HTTP = http.DefaultClient
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.URL == "":
		return errors.New("storeclient: the API's URL is required")
	case c.Org < 1:
		return errors.New("storeclient: an organizer is required")
	case !terminaltx.ValidID(c.Store):
		return errors.New("storeclient: a store id is required")
	case c.Token == "":
		return errors.New("storeclient: the store's token is required")
	}
	return nil
}

// HTTPError is an answer of the API other than 2xx.
type HTTPError struct {
	Status  int
	Message string // the API's public error message
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("storeclient: API answered %d: %s", e.Status, e.Message)
}

// refused reports whether the API refused the request for good: sending it
// again cannot succeed.
func refused(err error) bool {
	var he *HTTPError
	return errors.As(err, &he) && he.Status >= 400 && he.Status < 500 && he.Status != http.StatusTooManyRequests &&
		he.Status != http.StatusUnauthorized
}

// call sends a JSON request with the store's token, and an Idempotency-Key
// when idem is not empty. A request that got no answer (only with a key,
// or a GET), or a 503 (the database failing over), is sent again with the
// same key for about 15 s (callTries).
func call(ctx context.Context, cfg *Config, idem, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("storeclient: encode request: %w", err)
		}
	}
	var err error
	for try := range callTries {
		if try > 0 {
			select {
			case <-ctx.Done():
				return err
			case <-time.After(min(time.Duration(try)*300*time.Millisecond, 2*time.Second)):
			}
		}
		var retry bool
		retry, err = callOnce(ctx, cfg, idem, method, path, body, out)
		if !retry {
			return err
		}
	}
	return err
}

// callTries bounds the tries of one request: 0.3 + 0.6 + ... + 2 s between
// them, about 15 s in all, longer than a failover of the database.
const callTries = 11

func callOnce(ctx context.Context, cfg *Config, idem, method, path string, body []byte, out any) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(cfg.URL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("storeclient: request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+cfg.Token)
	if idem != "" {
		req.Header.Set(apitype.HeaderIdempotencyKey, idem)
	}
	resp, err := cfg.HTTP.Do(req)
	if err != nil {
		// Only a request that may be repeated safely is sent again.
		return idem != "" || method == "GET", fmt.Errorf("storeclient: %s %s: %w", method, pathOnly(path), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return idem != "" || method == "GET", fmt.Errorf("storeclient: %s %s: %w", method, pathOnly(path), err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(b, &e)
		// 503: the server could not reach its database (a failover). Every
		// request of a store may be sent again: money moves by its key,
		// custody entries are signed (a repeat is recognised), and a key
		// asked for again is only issued again.
		return resp.StatusCode == http.StatusServiceUnavailable, &HTTPError{Status: resp.StatusCode, Message: e.Error}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return false, fmt.Errorf("storeclient: %s %s: decode answer: %w", method, pathOnly(path), err)
		}
	}
	return false, nil
}

func pathOnly(p string) string {
	p, _, _ = strings.Cut(p, "?")
	return p
}

// Client is a store's client over its state directory. Its methods may be
// called from several goroutines; card operations run one at a time.
type Client struct {
	cfg Config
	app terminal.App
	kex *ecdh.PrivateKey
	mu  sync.Mutex
	j   *journal
}

// kexState is the content of KexFile.
type kexState struct {
	Org        int64  `json:"org"`
	Store      string `json:"store"`
	Alg        string `json:"alg"`
	Private    []byte `json:"private"`
	Registered bool   `json:"registered"`
}

// Open opens the store client's state directory (made when missing): its
// key-agreement key, made and registered with the API on first use, and
// its journal.
func Open(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if err := cfg.Layout.Validate(); err != nil {
		return nil, err
	}
	if cfg.StateDir == "" {
		return nil, errors.New("storeclient: a state directory is required")
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("storeclient: state directory: %w", err)
	}
	c := &Client{cfg: cfg, app: terminal.App{Layout: cfg.Layout}}
	if err := c.loadKex(ctx); err != nil {
		return nil, err
	}
	j, err := openJournal(filepath.Join(cfg.StateDir, JournalFile))
	if err != nil {
		return nil, err
	}
	c.j = j
	return c, nil
}

// Close closes the journal.
func (c *Client) Close() error { return c.j.close() }

func (c *Client) loadKex(ctx context.Context) error {
	path := filepath.Join(c.cfg.StateDir, KexFile)
	var st kexState
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		k, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			return fmt.Errorf("storeclient: key-agreement key: %w", err)
		}
		st = kexState{Org: c.cfg.Org, Store: c.cfg.Store, Alg: keydelivery.X25519, Private: k.Bytes()}
		if err := writeState(path, st); err != nil {
			return err
		}
	case err != nil:
		return fmt.Errorf("storeclient: %w", err)
	default:
		err = json.Unmarshal(b, &st)
		clear(b)
		if err != nil {
			return fmt.Errorf("storeclient: %s does not parse", path)
		}
	}
	defer clear(st.Private)
	if st.Org != c.cfg.Org || st.Store != c.cfg.Store {
		return fmt.Errorf("storeclient: %s is the state of store %s of organizer %d, not of store %s of organizer %d: give another --state",
			c.cfg.StateDir, st.Store, st.Org, c.cfg.Store, c.cfg.Org)
	}
	if c.kex, err = ecdh.X25519().NewPrivateKey(st.Private); err != nil {
		return fmt.Errorf("storeclient: %s: key-agreement key does not parse", path)
	}
	if st.Registered {
		return nil
	}
	req := apitype.StoreKexRequest{Alg: keydelivery.X25519, PublicKey: c.kex.PublicKey().Bytes()}
	if err := call(ctx, &c.cfg, "", "PUT", "/v1/stores/"+c.cfg.Store+"/kex-key", req, nil); err != nil {
		return fmt.Errorf("storeclient: register the key-agreement key: %w", err)
	}
	st.Registered = true
	return writeState(path, st)
}

func writeState(path string, st kexState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	defer clear(b)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("storeclient: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("storeclient: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("storeclient: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("storeclient: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("storeclient: %w", err)
	}
	return fsync.Dir(filepath.Dir(path))
}

// Request is a money request of the journal.
type Request struct {
	// Key is the request's idempotency key (a UUID), sent with every try.
	Key  string `json:"key"`
	Kind string `json:"kind"` // KindSale or KindTopUp
	Card string `json:"card"`
	// Old is the card a replacement replaces (Card is the new one).
	Old    string `json:"old,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Deposit is a sale's deposit; Amount the credit to load.
	Deposit int64 `json:"deposit,omitempty"`
	Amount  int64 `json:"amount,omitempty"`
	// ConfirmKey is the idempotency key of the load's confirmation.
	ConfirmKey string    `json:"confirm_key"`
	At         time.Time `json:"at"`
	// Load is the load the API answered ("" before the answer, or for a
	// sale without credit).
	Load     string `json:"load,omitempty"`
	Answered bool   `json:"answered,omitempty"`
}

// Kinds of money requests.
const (
	KindSale    = "sale"
	KindTopUp   = "topup"
	KindReplace = "replace"
	// KindVoucher is a voucher redeemed for the card: journaled only once
	// the API answered, so that the code never reaches the journal.
	KindVoucher = "voucher"
)

// Result is what a sale or a top-up did.
type Result struct {
	Request Request
	// ID is the sale's or the top-up's id in the ledger.
	ID string
	// Load is the credit written onto the card (nil for a sale without
	// credit).
	Load *terminal.Load
	// Settled are earlier requests of the card that were open in the
	// journal and were finished first.
	Settled []Result
	// Replacement is the API's answer to a replacement (KindReplace).
	Replacement *apitype.ReplaceResponse
}

// Sell sells the card in the field for cash: a refundable deposit and
// credit, which is written onto the card and confirmed.
func (c *Client) Sell(ctx context.Context, card terminal.Card, deposit, credit int64) (Result, error) {
	if deposit < 0 || credit < 0 || deposit+credit == 0 {
		return Result{}, errors.New("storeclient: a sale needs a deposit or credit (cents, not negative)")
	}
	return c.do(ctx, card, Request{Kind: KindSale, Deposit: deposit, Amount: credit})
}

// TopUp loads amount of cash onto the card in the field.
func (c *Client) TopUp(ctx context.Context, card terminal.Card, amount int64) (Result, error) {
	if amount <= 0 {
		return Result{}, errors.New("storeclient: a top-up needs a positive amount (cents)")
	}
	return c.do(ctx, card, Request{Kind: KindTopUp, Amount: amount})
}

// Replace makes the card in the field the replacement of the lost or
// stolen card old: the old card is blocked for good and the new card takes
// its balance, less the organizer's hold, as a load written at once. The
// hold follows as a second pending load once the terminals have synced
// past the block; it is written when the new card is next presented
// (Settle, a top-up, or an online terminal).
func (c *Client) Replace(ctx context.Context, card terminal.Card, old []byte, reason string) (Result, error) {
	if len(old) == 0 || reason == "" {
		return Result{}, errors.New("storeclient: a replacement needs the old card and a reason")
	}
	return c.do(ctx, card, Request{Kind: KindReplace, Old: terminaltx.CardHex(old), Reason: reason})
}

// Block blocks a lost or stolen card at the store's desk: it goes on the
// organizer's blocklist, which terminals take with their next answer.
func Block(ctx context.Context, cfg Config, card []byte, reason string) (apitype.BlockResponse, error) {
	var out apitype.BlockResponse
	if err := cfg.defaults(); err != nil {
		return out, err
	}
	err := call(ctx, &cfg, "", "POST", "/v1/stores/"+cfg.Store+"/cards/"+terminaltx.CardHex(card)+"/block",
		apitype.BlockRequest{Reason: reason}, &out)
	return out, err
}

// RedeemVoucher redeems a voucher code for the card presented and writes
// its value onto the card as a load. The code is sent, with one
// idempotency key for every try, before anything is journaled: the
// journal never holds it. A crash after the API's answer leaves the load
// pending in the ledger, where the card's next terminal or station write
// picks it up.
func (c *Client) RedeemVoucher(ctx context.Context, card terminal.Card, code string) (Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	uid, err := card.UID()
	if err != nil {
		return Result{}, fmt.Errorf("storeclient: card UID: %w", err)
	}
	settled, err := c.settle(ctx, card, uid)
	if err != nil {
		return Result{Settled: settled}, err
	}
	r := Request{Key: newUUID(), ConfirmKey: newUUID(), Kind: KindVoucher, Card: terminaltx.CardHex(uid), At: c.cfg.Now().UTC()}
	var mr apitype.MoneyResponse
	if err := call(ctx, &c.cfg, r.Key, "POST", "/v1/stores/"+c.cfg.Store+"/vouchers", voucherWire{Card: r.Card, Code: code}, &mr); err != nil {
		return Result{Settled: settled}, err
	}
	if mr.Load == "" {
		return Result{Settled: settled}, errors.New("storeclient: the API answered no load for the voucher")
	}
	r.Amount, r.Load, r.Answered = mr.Amount, mr.Load, true
	if err := c.j.append(entry{Op: opRequest, Request: &r}); err != nil {
		return Result{Settled: settled}, fmt.Errorf("%w (voucher load %s is pending: the card's next terminal writes it)", err, mr.Load)
	}
	res, err := c.run(ctx, card, uid, r)
	res.ID, res.Settled = mr.ID, settled
	return res, err
}

// voucherWire is apitype.VoucherRedeemRequest as a client sends it (an
// apitype.Secret does not encode).
type voucherWire struct {
	Card string `json:"card"`
	Code string `json:"code"`
}

// Correct asks for a correction of a posted payment at the store's desk:
// charged back to the merchant and, once posted (at once within the
// organizer's threshold, else when HQ approves it), a pending load of the
// payment's card, written at its next write.
func Correct(ctx context.Context, cfg Config, payment string, amount int64, reason string) (apitype.Correction, error) {
	if err := cfg.defaults(); err != nil {
		return apitype.Correction{}, err
	}
	var out apitype.Correction
	err := call(ctx, &cfg, newUUID(), "POST", "/v1/stores/"+cfg.Store+"/corrections",
		apitype.CorrectionRequest{Payment: payment, Amount: amount, Reason: reason}, &out)
	return out, err
}

func (c *Client) do(ctx context.Context, card terminal.Card, r Request) (Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	uid, err := card.UID()
	if err != nil {
		return Result{}, fmt.Errorf("storeclient: card UID: %w", err)
	}
	settled, err := c.settle(ctx, card, uid)
	if err != nil {
		return Result{Settled: settled}, err
	}
	r.Key, r.ConfirmKey = newUUID(), newUUID()
	r.Card = terminaltx.CardHex(uid)
	r.At = c.cfg.Now().UTC()
	if err := c.j.append(entry{Op: opRequest, Request: &r}); err != nil {
		return Result{Settled: settled}, err
	}
	res, err := c.run(ctx, card, uid, r)
	res.Settled = settled
	return res, err
}

// Settle finishes the card's money requests that are open in the journal
// (sent again with their idempotency keys, loads written or found on the
// card, and confirmed), and returns them.
func (c *Client) Settle(ctx context.Context, card terminal.Card) ([]Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	uid, err := card.UID()
	if err != nil {
		return nil, fmt.Errorf("storeclient: card UID: %w", err)
	}
	return c.settle(ctx, card, uid)
}

// Open returns the requests open in the journal: each waits for its card.
func (c *Client) Open() []Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.j.open()
}

func (c *Client) settle(ctx context.Context, card terminal.Card, uid []byte) ([]Result, error) {
	var out []Result
	for _, r := range c.j.open() {
		if r.Card != terminaltx.CardHex(uid) {
			continue
		}
		c.cfg.Logger.Info("storeclient: settling an open request", "key", r.Key, "kind", r.Kind, "card", r.Card)
		res, err := c.run(ctx, card, uid, r)
		if err != nil {
			return out, fmt.Errorf("storeclient: earlier %s %s of this card: %w", r.Kind, r.Key, err)
		}
		out = append(out, res)
	}
	return out, nil
}

// run takes an open request as far as it goes: sent (again), its load
// written onto the card (or found there), confirmed, done.
func (c *Client) run(ctx context.Context, card terminal.Card, uid []byte, r Request) (Result, error) {
	res := Result{Request: r}
	if !r.Answered {
		var mr apitype.MoneyResponse
		var err error
		switch r.Kind {
		case KindSale:
			err = call(ctx, &c.cfg, r.Key, "POST", "/v1/stores/"+c.cfg.Store+"/sales",
				apitype.SaleRequest{Card: r.Card, Deposit: r.Deposit, Credit: r.Amount}, &mr)
		case KindTopUp:
			err = call(ctx, &c.cfg, r.Key, "POST", "/v1/stores/"+c.cfg.Store+"/topups",
				apitype.TopUpRequest{Card: r.Card, Amount: r.Amount}, &mr)
		case KindReplace:
			var rr apitype.ReplaceResponse
			err = call(ctx, &c.cfg, r.Key, "POST", "/v1/stores/"+c.cfg.Store+"/replacements",
				apitype.ReplaceRequest{Old: r.Old, New: r.Card, Reason: r.Reason}, &rr)
			mr = apitype.MoneyResponse{ID: rr.ID, Card: rr.New, Amount: rr.Amount, Load: rr.Load}
			r.Amount = rr.Amount
			res.Replacement = &rr
		default:
			err = &HTTPError{Status: http.StatusBadRequest, Message: "unknown request kind " + r.Kind}
		}
		if refused(err) {
			// Nothing moved: the request is closed.
			if jerr := c.j.append(entry{Op: opRefused, Key: r.Key}); jerr != nil {
				return res, jerr
			}
			return res, err
		}
		if err != nil {
			return res, fmt.Errorf("%w (the request stays in the journal and is settled when the card is presented again)", err)
		}
		if r.Amount > 0 && mr.Load == "" {
			return res, fmt.Errorf("storeclient: the API answered no load for credit %d", r.Amount)
		}
		r.Load, r.Answered = mr.Load, true
		res.Request, res.ID = r, mr.ID
		if err := c.j.append(entry{Op: opAnswered, Key: r.Key, Load: mr.Load, ID: mr.ID, Amount: mr.Amount}); err != nil {
			return res, err
		}
	}
	if res.ID == "" {
		res.ID = r.Key
	}
	if r.Load != "" {
		l, err := c.writeLoad(ctx, card, uid, r)
		if err != nil {
			return res, err
		}
		res.Load = l
	}
	return res, c.j.append(entry{Op: opDone, Key: r.Key})
}

// writeLoad writes the request's pending load onto the card and confirms
// it; a load no longer pending was confirmed already (nil, nil).
func (c *Client) writeLoad(ctx context.Context, card terminal.Card, uid []byte, r Request) (*terminal.Load, error) {
	var pl apitype.PendingLoadsResponse
	if err := call(ctx, &c.cfg, "", "GET", "/v1/stores/"+c.cfg.Store+"/pending-loads?card="+url.QueryEscape(r.Card), nil, &pl); err != nil {
		return nil, fmt.Errorf("storeclient: pending loads: %w", err)
	}
	pending := false
	for _, p := range pl.Loads {
		if p.ID == r.Load {
			pending = true
			if p.Amount != r.Amount {
				return nil, fmt.Errorf("storeclient: load %s is of %d, the journal says %d", r.Load, p.Amount, r.Amount)
			}
		}
	}
	if !pending {
		return nil, nil
	}
	var ck apitype.StoreCreditKeyResponse
	if err := call(ctx, &c.cfg, "", "POST", "/v1/stores/"+c.cfg.Store+"/credit-keys",
		apitype.CreditKeyRequest{Card: r.Card, Load: r.Load}, &ck); err != nil {
		return nil, fmt.Errorf("storeclient: credit key: %w", err)
	}
	if ck.Load != r.Load || ck.Amount != r.Amount {
		return nil, errors.New("storeclient: the credit key is for another load")
	}
	credit, err := c.unwrap(&ck.Credit, keydelivery.KindStoreCredit, uid, r.Load)
	if err != nil {
		return nil, err
	}
	defer credit.Wipe()
	read, err := c.unwrap(&ck.Read, keydelivery.KindRead, uid, r.Load)
	if err != nil {
		return nil, err
	}
	defer read.Wipe()
	rk, ok := c.cfg.Layout.Key(personalize.RoleRead)
	if !ok {
		return nil, errors.New("storeclient: layout has no read key")
	}
	id, err := parseUUID(r.Load)
	if err != nil {
		return nil, err
	}
	l, err := c.app.WriteLoad(card, terminal.LoadKeys{RecordsNo: rk.No, Records: read, Credit: credit}, id, r.Amount, c.cfg.Store, c.cfg.Now())
	if err != nil {
		return nil, fmt.Errorf("storeclient: write load %s: %w (present the card again to settle it)", r.Load, err)
	}
	req := apitype.LoadWrittenRequest{Card: r.Card}
	if l.Write != nil {
		req.Write = &apitype.CardWrite{Seq: l.Write.Seq, Before: l.Write.Before, After: l.Write.After}
	}
	if err := call(ctx, &c.cfg, r.ConfirmKey, "POST", "/v1/stores/"+c.cfg.Store+"/loads/"+r.Load+"/written", req, nil); err != nil {
		return nil, fmt.Errorf("storeclient: confirm load %s: %w (it is on the card; present the card again to confirm it)", r.Load, err)
	}
	c.cfg.Logger.Info("storeclient: load written", "card", r.Card, "load", r.Load, "amount", r.Amount, "again", l.Again)
	return &l, nil
}

// unwrap opens a card key the API wrapped for this store, after checking
// that it is for this organizer, store, card, and load.
func (c *Client) unwrap(w *keydelivery.Wrapped, kind string, uid []byte, load string) (desfire.Key, error) {
	b := w.Binding
	if b.Kind != kind || b.Organizer != c.cfg.Org || b.Store != c.cfg.Store || !bytes.Equal(b.Card, uid) || b.Load != load {
		return desfire.Key{}, fmt.Errorf("storeclient: the %s key is for another card, load or store", kind)
	}
	raw, err := keydelivery.Unwrap(c.kex, w, c.cfg.Now())
	if err != nil {
		return desfire.Key{}, fmt.Errorf("storeclient: %s key: %w", kind, err)
	}
	k, err := keyderiv.NewAESKey(raw)
	clear(raw)
	if err != nil {
		return desfire.Key{}, err
	}
	defer k.Destroy()
	kb := k.Bytes()
	defer clear(kb)
	return desfire.NewAESKey(kb, 0)
}

// Balance is what a card holds and what the ledger says of it.
type Balance struct {
	Card   string `json:"card"`   // the card's id (UID, hex)
	Number string `json:"number"` // the number on its label
	Event  string `json:"event"`
	OnCard int64  `json:"on_card"` // balance read from the card
	Seq    uint32 `json:"card_seq"`
	// Ledger is the ledger's balance of the card (confirmed loads), Pending
	// the sum of its pending Loads.
	Ledger  int64                 `json:"ledger"`
	Pending int64                 `json:"pending"`
	Loads   []apitype.PendingLoad `json:"pending_loads"`
	// Settled are the card's earlier requests finished first.
	Settled []Result `json:"-"`
}

// Balance reads the card's balance and number from the card (with the
// card keys of POST /v1/stores/{store}/balance-keys, see the package doc)
// and the ledger's balance and pending loads, after settling the card's
// open requests.
func (c *Client) Balance(ctx context.Context, card terminal.Card) (Balance, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	uid, err := card.UID()
	if err != nil {
		return Balance{}, fmt.Errorf("storeclient: card UID: %w", err)
	}
	settled, err := c.settle(ctx, card, uid)
	if err != nil {
		return Balance{Settled: settled}, err
	}
	out := Balance{Card: terminaltx.CardHex(uid), Settled: settled}
	var bk apitype.BalanceKeyResponse
	if err := call(ctx, &c.cfg, "", "POST", "/v1/stores/"+c.cfg.Store+"/balance-keys", apitype.BalanceKeyRequest{Card: out.Card}, &bk); err != nil {
		return out, fmt.Errorf("storeclient: balance key: %w", err)
	}
	credit, err := c.unwrap(&bk.Balance, keydelivery.KindBalance, uid, "")
	if err != nil {
		return out, err
	}
	defer credit.Wipe()
	read, err := c.unwrap(&bk.Read, keydelivery.KindRead, uid, "")
	if err != nil {
		return out, err
	}
	defer read.Wipe()
	rk, _ := c.cfg.Layout.Key(personalize.RoleRead)
	rs, err := c.app.Open(card, rk.No, read)
	if err != nil {
		return out, err
	}
	info, err := rs.Info()
	if err != nil {
		return out, err
	}
	out.Number, out.Event = info.CardID.String(), info.Event
	ck, _ := c.cfg.Layout.Key(personalize.RoleCredit)
	cs, err := c.app.Open(card, ck.No, credit)
	if err != nil {
		return out, err
	}
	st, err := cs.Read()
	if err != nil {
		return out, err
	}
	out.OnCard, out.Seq = st.Balance, st.Seq
	var pl apitype.PendingLoadsResponse
	if err := call(ctx, &c.cfg, "", "GET", "/v1/stores/"+c.cfg.Store+"/pending-loads?card="+url.QueryEscape(out.Card), nil, &pl); err != nil {
		return out, fmt.Errorf("storeclient: pending loads: %w", err)
	}
	out.Ledger, out.Loads = pl.Balance, pl.Loads
	for _, l := range pl.Loads {
		out.Pending += l.Amount
	}
	return out, nil
}

// AppendReceipt signs, with the store's key s, a receipt for count cards of
// batch no and appends it to the custody log through the API (POST
// /v1/stores/{store}/receipts), which also counts them into the store's
// stock in the ledger. cfg needs URL, HTTP, Org, Store and Token.
func AppendReceipt(ctx context.Context, cfg Config, s *handover.Signer, no, count int64) (apitype.AppendResponse, error) {
	if err := cfg.defaults(); err != nil {
		return apitype.AppendResponse{}, err
	}
	e, err := handover.NewReceipt(s, cfg.Org, no, cfg.Store, count, cfg.Now())
	if err != nil {
		return apitype.AppendResponse{}, err
	}
	var out apitype.AppendResponse
	err = call(ctx, &cfg, "", "POST", "/v1/stores/"+cfg.Store+"/receipts", apitype.EntriesRequest{Entries: []handover.Entry{e}}, &out)
	return out, err
}

// AppendCardEvents signs the store's card events (sold, returned, voided, destroyed) with its
// key s and appends them to the custody log through the API (POST
// /v1/stores/{store}/card-events).
func AppendCardEvents(ctx context.Context, cfg Config, s *handover.Signer, events []handover.CardEvent) (apitype.AppendResponse, error) {
	if err := cfg.defaults(); err != nil {
		return apitype.AppendResponse{}, err
	}
	es, err := handover.SignCardEvents(s, cfg.Org, cfg.Now(), events)
	if err != nil {
		return apitype.AppendResponse{}, err
	}
	var out apitype.AppendResponse
	err = call(ctx, &cfg, "", "POST", "/v1/stores/"+cfg.Store+"/card-events", apitype.EntriesRequest{Entries: es}, &out)
	return out, err
}

// Config returns the client's configuration (for AppendCardEvents).
func (c *Client) Config() Config { return c.cfg }

func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return txid.ID(b).String()
}

func parseUUID(s string) (txid.ID, error) {
	var id txid.ID
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(b) != len(id) || len(s) != 36 {
		return id, fmt.Errorf("storeclient: load id %q is not a UUID", s)
	}
	copy(id[:], b)
	return id, nil
}

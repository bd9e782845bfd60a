package terminal

import (
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/api/blocklist"
	"github.com/loopcard/loopcard/api/internal/fsync"
	"github.com/loopcard/loopcard/api/keydelivery"
	"github.com/loopcard/loopcard/keys/keyderiv"
	"github.com/loopcard/loopcard/ledger/menu"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
	"github.com/loopcard/loopcard/personalize"
	"github.com/loopcard/loopcard/personalize/desfire"
)

// Files in a terminal's state directory (all 0600).
const (
	IdentityFile = "identity.json" // org, terminal id, merchant, event and its private keys
	SessionFile  = "session.json"  // the wrapped session key, as delivered
	QueueFile    = "queue.log"     // the durable transaction queue
)

// ErrNotEnrolled is returned by Open for a state directory without an
// identity.
var ErrNotEnrolled = errors.New("terminal: not enrolled: run enrol first")

// ErrNoSessionKey: the terminal has no valid session key and could not get
// one.
var ErrNoSessionKey = errors.New("terminal: no valid session key")

// Config is what a terminal needs.
type Config struct {
	// StateDir holds the identity, the session key and the queue.
	StateDir string
	// URL is the API's base URL, such as https://127.0.0.1:8443.
	URL string
	// HTTP is the client (with the API's CA in its TLS config); nil means
	// http.DefaultClient.
	HTTP *http.Client
	// Layout is the card application; zero means personalize.DefaultLayout.
	Layout personalize.Layout
	// Event and Merchant are fixed at enrolment and kept in the identity
	// file: leave them empty. When set, Open refuses an identity that names
	// another event or merchant; an identity written before enrolment
	// returned them (no event or merchant in it) takes them from here.
	Event    string
	Merchant string
	// BatchSize is the most transactions per upload; 0 means 500.
	BatchSize int
	// RenewBefore renews the session key this long before it expires; 0
	// means one hour.
	RenewBefore time.Duration
	Logger      *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// identity is the terminal's enrolled identity. It holds private keys: it
// has no String method and is never logged.
type identity struct {
	Org      int64  `json:"org"`
	Terminal string `json:"terminal"`
	Merchant string `json:"merchant,omitempty"`
	Event    string `json:"event,omitempty"`
	KeyID    string `json:"key_id"`
	// HQKey is hq-sign's public key (PKIX DER) the server gave at
	// enrolment, pinned: it verifies the blocklist.
	HQKey    []byte `json:"hq_key,omitempty"`
	SignSeed []byte `json:"sign_seed"`
	KexKey   []byte `json:"kex_key"`
}

// Terminal is one reference terminal. Its methods are safe for concurrent
// use; card operations are serialised.
type Terminal struct {
	cfg   Config
	app   App
	log   *slog.Logger
	now   func() time.Time
	id    identity
	sign  ed25519.PrivateKey
	kex   *ecdh.PrivateKey
	cl    *client
	queue *Queue

	cardMu sync.Mutex // one card at a time

	hqKey crypto.PublicKey // nil: the terminal takes no blocklist
	blMu  sync.Mutex
	bl    *blocklist.List
	refMu sync.Mutex // the refused taps file

	menuMu sync.Mutex
	menu   *menu.Menu // nil: none synced yet

	keyMu   sync.Mutex
	wrapped *keydelivery.Wrapped
	version byte
	event   keyderiv.AESKey
}

func (c *Config) defaults() {
	if c.HTTP == nil {
		c.HTTP = http.DefaultClient
	}
	if c.Layout.Keys == nil {
		c.Layout = personalize.DefaultLayout()
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 500
	}
	if c.RenewBefore <= 0 {
		c.RenewBefore = time.Hour
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Enrol makes the terminal's keys, enrols it with the one-time token HQ
// issued for it (POST /v1/terminals/enrol) and writes its identity to the
// state directory: its organizer, id, keys, and the merchant and event the
// server answered. It refuses a directory that holds an identity already.
func Enrol(ctx context.Context, cfg Config, org int64, terminal, token string) error {
	cfg.defaults()
	path := filepath.Join(cfg.StateDir, IdentityFile)
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("terminal: %s exists: this state directory is enrolled already", path)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("terminal: state directory: %w", err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("terminal: signing key: %w", err)
	}
	kex, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("terminal: key-agreement key: %w", err)
	}
	cl := &client{base: cfg.URL, http: cfg.HTTP}
	var er apitype.EnrolResponse
	err = cl.call(ctx, "POST", "/v1/terminals/enrol", apitype.EnrolRequest{Org: org, Terminal: terminal, Token: token,
		SigningKey: pub, KexAlg: keydelivery.X25519, KexKey: kex.PublicKey().Bytes()}, &er, false, "")
	if err != nil {
		return fmt.Errorf("terminal: enrol %s: %w", terminal, err)
	}
	if er.Organizer != 0 && er.Organizer != org {
		return fmt.Errorf("terminal: enrol %s: the server answered for organizer %d", terminal, er.Organizer)
	}
	if !terminaltx.ValidID(er.Merchant) || !terminaltx.ValidID(er.Event) {
		return fmt.Errorf("terminal: enrol %s: the server's answer names no merchant and event (a server older than this terminal?)", terminal)
	}
	if len(er.HQKey) > 0 {
		if _, err := x509.ParsePKIXPublicKey(er.HQKey); err != nil {
			return fmt.Errorf("terminal: enrol %s: the server's HQ key does not parse: %w", terminal, err)
		}
	}
	id := identity{Org: org, Terminal: terminal, Merchant: er.Merchant, Event: er.Event, KeyID: er.KeyID,
		HQKey: er.HQKey, SignSeed: priv.Seed(), KexKey: kex.Bytes()}
	b, err := json.Marshal(id)
	if err != nil {
		return err
	}
	clear(id.SignSeed)
	if err := writeSynced(path, b); err != nil {
		return fmt.Errorf("terminal: write identity: %w", err)
	}
	clear(b)
	return fsync.Dir(cfg.StateDir)
}

// Enrolled reports whether dir holds a terminal identity.
func Enrolled(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, IdentityFile))
	return err == nil
}

// Open loads an enrolled terminal from its state directory, with its queue
// and its last session key.
func Open(cfg Config) (*Terminal, error) {
	cfg.defaults()
	if err := cfg.Layout.Validate(); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(cfg.StateDir, IdentityFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotEnrolled
	}
	if err != nil {
		return nil, fmt.Errorf("terminal: identity: %w", err)
	}
	t := &Terminal{cfg: cfg, app: App{Layout: cfg.Layout}, log: cfg.Logger, now: cfg.Now}
	err = json.Unmarshal(b, &t.id)
	clear(b)
	if err != nil || len(t.id.SignSeed) != ed25519.SeedSize {
		return nil, fmt.Errorf("terminal: identity file does not parse")
	}
	if err := t.id.fix(cfg.Event, cfg.Merchant); err != nil {
		clear(t.id.SignSeed)
		clear(t.id.KexKey)
		return nil, err
	}
	t.sign = ed25519.NewKeyFromSeed(t.id.SignSeed)
	clear(t.id.SignSeed)
	if t.kex, err = ecdh.X25519().NewPrivateKey(t.id.KexKey); err != nil {
		return nil, fmt.Errorf("terminal: identity: key-agreement key does not parse")
	}
	clear(t.id.KexKey)
	s := newSigner(t.sign, t.id.KeyID)
	s.Now = cfg.Now
	t.cl = &client{base: cfg.URL, http: cfg.HTTP, signer: s}
	if t.queue, err = OpenQueue(filepath.Join(cfg.StateDir, QueueFile)); err != nil {
		return nil, err
	}
	if t.hqKey, err = t.id.pinnedKey(); err != nil {
		return nil, err
	}
	if t.hqKey == nil {
		// Enrolled before the blocklist: no key was pinned, and none is
		// taken later (trusting the first key a server sends would let
		// whoever answers first sign the terminal's blocklist).
		t.log.Warn(NoPinnedKeyWarning, "terminal", t.id.Terminal)
	}
	if err := t.loadBlocklist(); err != nil {
		t.log.Warn("terminal: stored blocklist not usable; the next answer brings it again", "err", err)
	}
	if err := t.loadSessionKey(); err != nil {
		t.log.Info("terminal: stored session key not usable", "err", err)
	}
	if err := t.loadMenu(); err != nil {
		t.log.Warn("terminal: stored menu not usable; SyncMenu fetches it again", "err", err)
	}
	return t, nil
}

// fix settles the identity's event and merchant against the ones a
// configuration names (see Config.Event).
func (id *identity) fix(event, merchant string) error {
	for _, f := range []struct{ what, fixed, given string }{
		{"event", id.Event, event}, {"merchant", id.Merchant, merchant}} {
		if f.fixed != "" && f.given != "" && f.given != f.fixed {
			return fmt.Errorf("terminal: %s %q given, but this terminal was enrolled for %s %q: drop --%s", f.what, f.given, f.what, f.fixed, f.what)
		}
	}
	if id.Event == "" {
		id.Event = event
	}
	if id.Merchant == "" {
		id.Merchant = merchant
	}
	if !terminaltx.ValidID(id.Event) || !terminaltx.ValidID(id.Merchant) {
		return errors.New("terminal: the identity file names no event and merchant (enrolled by an older version): give --event and --merchant")
	}
	return nil
}

// ID is the terminal's id; Org its organizer.
func (t *Terminal) ID() string { return t.id.Terminal }

// Event is the event the terminal takes payments for, fixed at enrolment.
func (t *Terminal) Event() string { return t.id.Event }

// Merchant is the merchant the terminal signs its debits for, fixed at
// enrolment.
func (t *Terminal) Merchant() string { return t.id.Merchant }

// Org is the terminal's organizer.
func (t *Terminal) Org() int64 { return t.id.Org }

// Queue is the terminal's durable queue.
func (t *Terminal) Queue() *Queue { return t.queue }

// Close closes the queue and forgets the session key.
func (t *Terminal) Close() error {
	t.keyMu.Lock()
	t.event.Destroy()
	t.event = keyderiv.AESKey{}
	t.keyMu.Unlock()
	return t.queue.Close()
}

func (t *Terminal) loadSessionKey() error {
	b, err := os.ReadFile(filepath.Join(t.cfg.StateDir, SessionFile))
	if err != nil {
		return err
	}
	var sk apitype.SessionKeyResponse
	if err := json.Unmarshal(b, &sk); err != nil {
		return fmt.Errorf("terminal: session key file does not parse: %w", err)
	}
	return t.installKey(&sk)
}

func (t *Terminal) installKey(sk *apitype.SessionKeyResponse) error {
	if sk.Event != t.id.Event || sk.Terminal != t.id.Terminal || sk.Organizer != t.id.Org {
		return fmt.Errorf("terminal: session key is for another event or terminal")
	}
	raw, err := keydelivery.Unwrap(t.kex, &sk.Wrapped, t.now())
	if err != nil {
		return err
	}
	k, err := keyderiv.NewAESKey(raw)
	clear(raw)
	if err != nil {
		return err
	}
	version := baseKeyVersion(sk.BaseKey)
	t.keyMu.Lock()
	defer t.keyMu.Unlock()
	t.event.Destroy()
	t.event, t.wrapped, t.version = k, &sk.Wrapped, version
	return nil
}

// SessionKeyExpires is when the current session key expires (zero: none).
func (t *Terminal) SessionKeyExpires() time.Time {
	t.keyMu.Lock()
	defer t.keyMu.Unlock()
	if t.wrapped == nil {
		return time.Time{}
	}
	return t.wrapped.Expires
}

// RenewSessionKey fetches a new session key for the event
// (POST /v1/terminal/session-keys) and keeps it on disk, wrapped as it came.
func (t *Terminal) RenewSessionKey(ctx context.Context) error {
	var sk apitype.SessionKeyResponse
	req := apitype.SessionKeyRequest{Event: t.id.Event, Blocklist: t.blocklistVersion()}
	if err := t.cl.call(ctx, "POST", "/v1/terminal/session-keys", req, &sk, true, ""); err != nil {
		return fmt.Errorf("terminal: session key: %w", err)
	}
	if err := t.installKey(&sk); err != nil {
		return err
	}
	if err := t.applyBlocklist(sk.Blocklist); err != nil {
		return err
	}
	sk.Blocklist = nil // kept in its own file
	b, err := json.Marshal(sk)
	if err != nil {
		return err
	}
	if err := writeSynced(filepath.Join(t.cfg.StateDir, SessionFile), b); err != nil {
		return fmt.Errorf("terminal: store session key: %w", err)
	}
	t.log.Info("terminal: session key renewed", "terminal", t.id.Terminal, "key_id", sk.KeyID, "expires", sk.Expires)
	// The menu comes along: one more request while online anyway. A
	// merchant without a menu, or a server older than menus, is not an
	// error here.
	if _, err := t.SyncMenu(ctx); err != nil {
		t.log.Info("terminal: menu not synced with the session key", "err", err)
	}
	return nil
}

// EnsureSessionKey renews the session key when there is none or it expires
// within RenewBefore. Offline, a key that is still valid is kept.
func (t *Terminal) EnsureSessionKey(ctx context.Context) error {
	exp := t.SessionKeyExpires()
	if !exp.IsZero() && t.now().Add(t.cfg.RenewBefore).Before(exp) {
		return nil
	}
	err := t.RenewSessionKey(ctx)
	if err != nil && t.now().Before(exp) {
		t.log.Warn("terminal: session key not renewed; the current one is still valid", "expires", exp, "err", err)
		return nil
	}
	return err
}

// cardKey derives key 1 of the card from the session key.
func (t *Terminal) cardKey(uid []byte) (desfire.Key, error) {
	t.keyMu.Lock()
	defer t.keyMu.Unlock()
	if t.event.IsZero() || t.wrapped == nil || !t.now().Before(t.wrapped.Expires) {
		return desfire.Key{}, ErrNoSessionKey
	}
	return t.app.CardKey(t.event, uid, t.version)
}

func (t *Terminal) sessionKeyID() string {
	t.keyMu.Lock()
	defer t.keyMu.Unlock()
	if t.wrapped == nil {
		return ""
	}
	return t.wrapped.KeyID
}

func (t *Terminal) open(card Card) (*Session, []byte, error) {
	uid, err := card.UID()
	if err != nil {
		return nil, nil, fmt.Errorf("terminal: card UID: %w", err)
	}
	key, err := t.cardKey(uid)
	if err != nil {
		return nil, nil, err
	}
	defer key.Wipe()
	debit, ok := t.app.Layout.Key(personalize.RoleDebit)
	if !ok {
		return nil, nil, errors.New("terminal: layout has no debit key")
	}
	s, err := t.app.Open(card, debit.No, key)
	if err != nil {
		return nil, nil, err
	}
	return s, uid, nil
}

// resolve settles the pending intents of the card in session s.
func (t *Terminal) resolve(s *Session, uid []byte, st State) (int, error) {
	pend := t.queue.PendingFor(uid)
	n := 0
	for _, p := range pend {
		committed, known, err := s.Committed(p.ID, p.CardSeq, st)
		if err != nil {
			return n, err
		}
		if !known {
			t.log.Warn("terminal: transaction outcome cannot be read from the card", "txn", p.ID.String())
			return n, ErrUnresolved
		}
		state := Void
		if committed {
			state = Committed
		}
		if err := t.queue.Mark(state, nil, p.ID); err != nil {
			return n, err
		}
		t.log.Info("terminal: resolved a transaction from the card", "txn", p.ID.String(), "committed", committed)
		n++
	}
	return n, nil
}

// Resolve settles, from the card in the field, the transactions of that
// card whose outcome was unknown (a crash or a tear during the commit). It
// returns how many it settled.
func (t *Terminal) Resolve(card Card) (int, error) {
	t.cardMu.Lock()
	defer t.cardMu.Unlock()
	s, uid, err := t.open(card)
	if err != nil {
		return 0, err
	}
	st, err := s.Read()
	if err != nil {
		return 0, err
	}
	return t.resolve(s, uid, st)
}

// Debit takes amount (minor units) from the card in the field, offline:
// a card on the blocklist is refused (ErrCardBlocked) and the tap recorded;
// see the package documentation for the order of the card transaction and
// the queue. It returns the signed transaction once the card committed it
// and the queue holds it. Errors wrap ErrInsufficient, ErrUncertain,
// ErrUnresolved, ErrNoSessionKey, or are card or disk failures.
func (t *Terminal) Debit(card Card, amount int64) (*terminaltx.Signed, error) {
	return t.debit(card, amount, nil)
}

// debit is Debit, with items (version 2) when there are any.
func (t *Terminal) debit(card Card, amount int64, items []terminaltx.Item) (*terminaltx.Signed, error) {
	if amount <= 0 || amount > 1<<31-1 {
		return nil, fmt.Errorf("terminal: amount %d out of range", amount)
	}
	t.cardMu.Lock()
	defer t.cardMu.Unlock()
	// A card on the blocklist is refused before anything is read from it.
	if uid, err := card.UID(); err == nil && t.Blocked(uid) {
		if err := t.refuse(uid); err != nil {
			return nil, errors.Join(ErrCardBlocked, err)
		}
		return nil, ErrCardBlocked
	}
	s, uid, err := t.open(card)
	if err != nil {
		return nil, err
	}
	st, err := s.Read()
	if err != nil {
		return nil, err
	}
	if _, err := t.resolve(s, uid, st); err != nil {
		return nil, err
	}
	if st.Balance < amount {
		return nil, fmt.Errorf("%w: %d < %d", ErrInsufficient, st.Balance, amount)
	}
	now := t.now()
	var rnd [10]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	tx := &terminaltx.Tx{Kind: terminaltx.KindDebit, ID: txid.New(now, rnd[:]), Organizer: t.id.Org,
		Terminal: t.id.Terminal, TerminalSeq: t.queue.NextSeq(), Card: uid, CardSeq: st.Seq + 1, Amount: amount,
		BalanceBefore: st.Balance, BalanceAfter: st.Balance - amount, Merchant: t.id.Merchant, Time: now, Items: items}
	signed, err := terminaltx.Sign(tx, t.sign)
	if err != nil {
		return nil, err
	}
	rec := Record{Kind: RecordDebit, ID: tx.ID, CardSeq: tx.CardSeq, Amount: uint32(amount), Unix: uint32(now.Unix()), Who: WhoHash(t.id.Terminal)}
	if err := s.Stage(st, amount, rec); err != nil {
		return nil, err
	}
	if err := t.queue.Intent(signed); err != nil {
		return nil, err
	}
	if err := s.Commit(); err != nil {
		if errors.Is(err, ErrUncertain) {
			return nil, err
		}
		if merr := t.queue.Mark(Void, nil, tx.ID); merr != nil {
			return nil, errors.Join(err, merr)
		}
		return nil, err
	}
	if err := t.queue.Mark(Committed, nil, tx.ID); err != nil {
		return nil, err
	}
	return signed, nil
}

// baseKeyVersion is the version N of the event debit key's base key, which
// the server names as the HSM labels it ("app-debit/vN", see keys.Label); 1
// when it names no version. Cards carry N as the version of key 1.
func baseKeyVersion(label string) byte {
	name, v, ok := strings.Cut(label, "/v")
	n, err := strconv.Atoi(v)
	if !ok || name != "app-debit" || err != nil || n < 1 || n > 255 || strconv.Itoa(n) != v {
		return 1
	}
	return byte(n)
}

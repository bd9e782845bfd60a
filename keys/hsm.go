package keys

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/ThalesIgnite/crypto11"
	"github.com/miekg/pkcs11"
)

// Errors of Open that callers and the CLI branch on.
var (
	// ErrModuleNotFound: the PKCS#11 library named by module-path is missing.
	ErrModuleNotFound = errors.New("PKCS#11 module not found")
	// ErrTokenNotFound: no token matches the URI.
	ErrTokenNotFound = errors.New("token not found")
	// ErrWrongPIN: the token refused the PIN.
	ErrWrongPIN = errors.New("the HSM refused the PIN")
	// ErrClosed: the HSM was used after Close.
	ErrClosed = errors.New("HSM closed")
)

// Options tune Open. The zero value is usable.
type Options struct {
	// Logger receives audit records of privileged actions (who, what,
	// outcome) and never secret material. Nil discards them.
	Logger *slog.Logger
	// MaxSessions bounds the sessions of the pool; 0 means 4.
	MaxSessions int
	// ECDSA makes hq-sign an ECDSA P-256 key pair instead of Ed25519. It is
	// chosen automatically for tokens without CKM_EC_EDWARDS_KEY_PAIR_GEN or
	// CKM_EDDSA.
	ECDSA bool
	// ResolveTTL is how long the newest version of each key, found by
	// listing the token, is reused for labels with version 0. A version
	// created by another process is used here at most ResolveTTL after it
	// appeared (this process's own Rotate, Import and Init are seen at once).
	// 0 means DefaultResolveTTL; a negative value lists the token every time.
	ResolveTTL time.Duration
}

// DefaultResolveTTL is the default Options.ResolveTTL. Older versions stay
// valid after a rotation, so the only effect of the delay is that for up to
// this long another process's new version is not yet the one used.
const DefaultResolveTTL = 5 * time.Second

// HSM is an open, logged-in PKCS#11 token holding the key hierarchy. It is
// safe for concurrent use.
type HSM struct {
	c11    *crypto11.Context
	p      *pkcs11.Ctx
	slot   uint
	pool   *sessionPool
	log    *slog.Logger
	who    string
	module string
	// ecdsa: new hq-sign versions are ECDSA P-256 (through crypto11).
	ecdsa bool
	// eddsa: the token has CKM_EC_EDWARDS_KEY_PAIR_GEN and CKM_EDDSA.
	eddsa bool
	ttl   time.Duration // Options.ResolveTTL

	mu       sync.Mutex
	handles  map[string]pkcs11.ObjectHandle // "CLASS:LABEL" -> handle
	newest   map[string]int                 // key name -> newest version, as listed at newestAt
	newestAt time.Time
	gen      uint64 // counts forget calls, so a slow listing cannot undo one
	closed   bool
}

// Open opens and logs in to the token named by the RFC 7512 URI uri. The
// module is loaded from module-path; the PIN comes from pin-source or
// pin-value and is never taken from anywhere else.
//
// Errors wrap ErrBadURI, ErrNoPIN, ErrModuleNotFound, ErrTokenNotFound or
// ErrWrongPIN, and their text says what to do.
func Open(uri string, opts Options) (*HSM, error) {
	u, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	if u.ModulePath == "" {
		return nil, fmt.Errorf("%w: no module-path: add ?module-path=/path/to/pkcs11-module.so to the HSM URI", ErrBadURI)
	}
	if st, err := os.Stat(u.ModulePath); err != nil || st.IsDir() {
		return nil, fmt.Errorf("%w: %s: install softhsm2 (scripts/setup) or fix module-path in the HSM URI", ErrModuleNotFound, u.ModulePath)
	}
	if u.Token == "" && u.Serial == "" && u.SlotID == nil {
		return nil, fmt.Errorf("%w: name the token with token=LABEL, serial= or slot-id=", ErrBadURI)
	}
	pin, err := u.readPIN()
	if err != nil {
		return nil, err
	}
	defer pin.destroy()

	modules.Lock()
	defer modules.Unlock()
	if modules.live[u.ModulePath] > 0 {
		// crypto11 finalises the module when a Configure fails, which would
		// break every HSM already open in this process: check first.
		release, err := precheck(u, pin)
		if err != nil {
			return nil, err
		}
		defer release()
	}

	cfg := &crypto11.Config{Path: u.ModulePath, Pin: string(pin.bytes())}
	switch {
	case u.SlotID != nil:
		n := int(*u.SlotID)
		cfg.SlotNumber = &n
	case u.Serial != "":
		cfg.TokenSerial = u.Serial
	default:
		cfg.TokenLabel = u.Token
	}
	c11, err := crypto11.Configure(cfg)
	if err != nil {
		return nil, classifyOpenError(err, u)
	}
	h := &HSM{c11: c11, handles: map[string]pkcs11.ObjectHandle{}, who: osUser()}
	h.log = opts.Logger
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	// crypto11 initialised the module and logged in; login state is shared
	// by every session of the process, so our own raw sessions need none.
	h.p = pkcs11.New(u.ModulePath)
	if h.p == nil {
		c11.Close()
		return nil, fmt.Errorf("%w: %s cannot be loaded: install softhsm2 (scripts/setup) or fix module-path in the HSM URI", ErrModuleNotFound, u.ModulePath)
	}
	if err := h.p.Initialize(); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
		h.p.Destroy()
		c11.Close()
		return nil, fmt.Errorf("keys: initialise PKCS#11 module: %w", err)
	}
	slot, err := findSlot(h.p, u)
	if err != nil {
		h.p.Destroy()
		c11.Close()
		return nil, err
	}
	h.slot = slot
	h.eddsa = hasMechanisms(h.p, slot, ckmECEdwardsKeyPairGen, ckmEdDSA)
	h.ecdsa = opts.ECDSA || !h.eddsa
	h.ttl = opts.ResolveTTL
	if h.ttl == 0 {
		h.ttl = DefaultResolveTTL
	}
	n := opts.MaxSessions
	if n <= 0 {
		n = 4
	}
	h.pool = newSessionPool(h.p, slot, n)
	h.module = u.ModulePath
	modules.live[u.ModulePath]++
	return h, nil
}

// modules counts the open HSMs per module path, and serialises Open and
// Close, which initialise and finalise modules.
var modules = struct {
	sync.Mutex
	live map[string]int
}{live: map[string]int{}}

// precheck finds the token and logs in on a session of our own, for a module
// already initialised in this process. release closes the session; call it
// once crypto11 holds its own logged-in session.
func precheck(u *URI, pin *secretBytes) (release func(), err error) {
	p := pkcs11.New(u.ModulePath)
	if p == nil {
		return nil, fmt.Errorf("%w: %s cannot be loaded: install softhsm2 (scripts/setup) or fix module-path in the HSM URI", ErrModuleNotFound, u.ModulePath)
	}
	if err := p.Initialize(); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
		p.Destroy()
		return nil, fmt.Errorf("keys: initialise PKCS#11 module: %w", err)
	}
	slot, err := findSlot(p, u)
	if err != nil {
		p.Destroy()
		return nil, err
	}
	sh, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		p.Destroy()
		return nil, fmt.Errorf("keys: open session: %w", err)
	}
	release = func() {
		_ = p.CloseSession(sh)
		p.Destroy()
	}
	if err := p.Login(sh, pkcs11.CKU_USER, string(pin.bytes())); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)) {
		release()
		return nil, classifyOpenError(err, u)
	}
	return release, nil
}

// classifyOpenError maps crypto11's errors, which do not implement Unwrap,
// onto our sentinels.
func classifyOpenError(err error, u *URI) error {
	root := err
	for {
		c, ok := root.(interface{ Cause() error })
		if !ok || c.Cause() == nil || c.Cause() == root {
			break
		}
		root = c.Cause()
	}
	var p11 pkcs11.Error
	if errors.As(root, &p11) {
		switch p11 {
		case pkcs11.CKR_PIN_INCORRECT, pkcs11.CKR_PIN_LEN_RANGE, pkcs11.CKR_PIN_INVALID:
			return fmt.Errorf("%w: check the pin-source file of the HSM URI", ErrWrongPIN)
		case pkcs11.CKR_PIN_LOCKED:
			return fmt.Errorf("%w: the user PIN is locked: ask the security officer to reset it", ErrWrongPIN)
		}
		return fmt.Errorf("keys: open HSM: %w", p11)
	}
	if strings.Contains(root.Error(), "could not find PKCS#11 token") {
		return fmt.Errorf("%w: no token matches %s: check token= in the HSM URI, and SOFTHSM2_CONF for SoftHSM2 (softhsm2-util --show-slots lists tokens)", ErrTokenNotFound, u)
	}
	return fmt.Errorf("keys: open HSM: %s", err)
}

func findSlot(p *pkcs11.Ctx, u *URI) (uint, error) {
	slots, err := p.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("keys: list slots: %w", err)
	}
	for _, s := range slots {
		if u.SlotID != nil {
			if s == *u.SlotID {
				return s, nil
			}
			continue
		}
		ti, err := p.GetTokenInfo(s)
		if err != nil {
			continue
		}
		if u.Serial != "" && strings.TrimSpace(ti.SerialNumber) != u.Serial {
			continue
		}
		if u.Token != "" && strings.TrimRight(ti.Label, " \x00") != u.Token {
			continue
		}
		if u.Manufacturer != "" && strings.TrimRight(ti.ManufacturerID, " \x00") != u.Manufacturer {
			continue
		}
		if u.Model != "" && strings.TrimRight(ti.Model, " \x00") != u.Model {
			continue
		}
		return s, nil
	}
	return 0, fmt.Errorf("%w: no token matches %s: check token= in the HSM URI, and SOFTHSM2_CONF for SoftHSM2 (softhsm2-util --show-slots lists tokens)", ErrTokenNotFound, u)
}

// hasMechanisms reports whether the token in slot supports every mechanism.
func hasMechanisms(p *pkcs11.Ctx, slot uint, mechs ...uint) bool {
	list, err := p.GetMechanismList(slot)
	if err != nil {
		return false
	}
	for _, want := range mechs {
		found := false
		for _, m := range list {
			if m.Mechanism == want {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Close closes every session and releases the module. Close is idempotent.
func (h *HSM) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	h.mu.Unlock()
	modules.Lock()
	defer modules.Unlock()
	modules.live[h.module]--
	h.pool.close()
	h.p.Destroy()
	if err := h.c11.Close(); err != nil {
		return fmt.Errorf("keys: close HSM: %w", err)
	}
	return nil
}

// withSession runs f with a session of the pool.
func (h *HSM) withSession(ctx context.Context, f func(pkcs11.SessionHandle) error) error {
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return ErrClosed
	}
	sh, err := h.pool.get(ctx)
	if err != nil {
		return err
	}
	err = f(sh)
	broken := errors.Is(err, pkcs11.Error(pkcs11.CKR_SESSION_HANDLE_INVALID)) ||
		errors.Is(err, pkcs11.Error(pkcs11.CKR_SESSION_CLOSED)) ||
		errors.Is(err, pkcs11.Error(pkcs11.CKR_DEVICE_REMOVED))
	h.pool.put(sh, broken)
	if staleHandle(err) {
		h.forget() // another process changed the token
	}
	return err
}

func staleHandle(err error) bool {
	return errors.Is(err, pkcs11.Error(pkcs11.CKR_OBJECT_HANDLE_INVALID)) || errors.Is(err, pkcs11.Error(pkcs11.CKR_KEY_HANDLE_INVALID))
}

// withKey is withSession for operations that only use existing keys, and
// so can run again: when f fails because a cached handle or newest version
// is stale (another process destroyed or replaced the object), the caches
// are dropped and f runs once more.
func (h *HSM) withKey(ctx context.Context, f func(pkcs11.SessionHandle) error) error {
	err := h.withSession(ctx, f)
	if staleHandle(err) || errors.Is(err, ErrKeyNotFound) {
		if errors.Is(err, ErrKeyNotFound) {
			h.forget()
		}
		err = h.withSession(ctx, f)
	}
	return err
}

// sessionPool hands out read-write sessions on one slot, opening up to max
// of them on demand. SoftHSM2 serialises operations on a token, so a few
// sessions are enough; a real HSM gains from more.
type sessionPool struct {
	p    *pkcs11.Ctx
	slot uint
	idle chan pkcs11.SessionHandle
	open chan struct{} // one token per open session

	mu  sync.Mutex
	all map[pkcs11.SessionHandle]bool
}

func newSessionPool(p *pkcs11.Ctx, slot uint, max int) *sessionPool {
	return &sessionPool{
		p: p, slot: slot,
		idle: make(chan pkcs11.SessionHandle, max),
		open: make(chan struct{}, max),
		all:  map[pkcs11.SessionHandle]bool{},
	}
}

func (sp *sessionPool) get(ctx context.Context) (pkcs11.SessionHandle, error) {
	select {
	case sh := <-sp.idle:
		return sh, nil
	default:
	}
	select {
	case sh := <-sp.idle:
		return sh, nil
	case sp.open <- struct{}{}:
		sh, err := sp.p.OpenSession(sp.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
		if err != nil {
			<-sp.open
			return 0, fmt.Errorf("keys: open session: %w", err)
		}
		sp.mu.Lock()
		sp.all[sh] = true
		sp.mu.Unlock()
		return sh, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("keys: waiting for an HSM session: %w", ctx.Err())
	}
}

func (sp *sessionPool) put(sh pkcs11.SessionHandle, broken bool) {
	if broken {
		_ = sp.p.CloseSession(sh)
		sp.mu.Lock()
		delete(sp.all, sh)
		sp.mu.Unlock()
		<-sp.open
		return
	}
	sp.idle <- sh
}

// close closes every session, including ones still in use: callers have
// stopped by the time Close runs.
func (sp *sessionPool) close() {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	for sh := range sp.all {
		_ = sp.p.CloseSession(sh)
	}
	sp.all = map[pkcs11.SessionHandle]bool{}
}

// Package station is the batch personalization station: for each card
// presented it recognises the card's state (blank with factory keys, ours
// and finished, ours and half-done, foreign), derives the card's keys in the
// HSM, brings the card to the batch's layout with steps that can each be
// repeated, reads it back with the new keys, prints its QR+PIN label to the
// spool and records it. A card torn away at any step and presented again is
// finished; a station restarted after a crash resumes the batch without
// duplicating or losing a card, because a card reserves its slot by UID
// before anything is written to it and is recorded only after its label is
// on disk. A recorded card is registered in the ledger for its batch's
// event; a station started again registers whatever a crash left out.
package station

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loopcard/loopcard/keys"
	"github.com/loopcard/loopcard/keys/keyderiv"
	"github.com/loopcard/loopcard/personalize"
	"github.com/loopcard/loopcard/personalize/batch"
	"github.com/loopcard/loopcard/personalize/desfire"
	"github.com/loopcard/loopcard/personalize/labels"
	"github.com/loopcard/loopcard/personalize/qrpin"
	"github.com/loopcard/loopcard/personalize/reader"
)

// HSM is what the station needs of keys.HSM.
type HSM interface {
	Diversify(ctx context.Context, l keys.Label, m []byte) (keyderiv.AESKey, keys.Label, error)
	EventDebitKey(ctx context.Context, l keys.Label, org int64, event string) (keyderiv.AESKey, keys.Label, error)
	NewPIN(ctx context.Context) (keys.PIN, error)
	PINVerificationValue(ctx context.Context, cardID []byte, p keys.PIN) (keys.PVV, error)
}

// Batches is what the station needs of batch.Batches.
type Batches interface {
	PinKeyVersions(ctx context.Context, orgID, no int64, want map[string]int) (map[string]int, error)
	Reserve(ctx context.Context, orgID, no int64, uid []byte) (batch.Reservation, error)
	Finish(ctx context.Context, orgID, no int64, slot int, uid []byte, f batch.Finished) (batch.Progress, error)
	Cards(ctx context.Context, orgID, no int64) ([]batch.Card, error)
}

// CardRegistrar enters finished cards into the ledger (ledger.Ledger's
// RegisterCards): each card gets its account under the event. Registering
// a card again must change nothing, and an event the ledger does not know
// must fail, with or without cards. QueueRegisterCards queues the same in
// the transaction that records the card (batch.Finished.Also), so that a
// card is recorded and registered together or not at all.
type CardRegistrar interface {
	RegisterCards(ctx context.Context, org int64, event string, cards [][]byte) error
	QueueRegisterCards(b *pgx.Batch, org int64, event string, cards [][]byte)
}

// Spool receives each card's label before the card is recorded.
type Spool interface {
	Append(labels.Label) error
}

// Errors of Personalize that callers branch on.
var (
	// ErrForeign: the card answers to neither the factory keys nor ours; it
	// was not touched.
	ErrForeign = errors.New("foreign card: it answers to neither factory keys nor this system's keys; set it aside")
	// ErrTorn: the card left the field in the middle; present it again.
	ErrTorn = errors.New("card removed before it was finished: present it again")
	// ErrOtherBatch: the card belongs to another batch.
	ErrOtherBatch = errors.New("card belongs to another batch")
	// ErrMismatch: the card is ours but holds something that does not match
	// the layout or the record; it needs a person to look at it.
	ErrMismatch = errors.New("card does not match the batch")
)

// Outcome is what happened to a card.
type Outcome string

// Outcomes of Personalize.
const (
	// Personalized: the card was blank and is now finished.
	Personalized Outcome = "personalized"
	// Resumed: the card was ours and half-done and is now finished.
	Resumed Outcome = "resumed"
	// AlreadyDone: the card was finished and recorded earlier; it was
	// verified and left as it was.
	AlreadyDone Outcome = "already-done"
)

// Config is everything a station needs. Batch is the batch as stored.
type Config struct {
	Batch     batch.Batch
	PublicURL string
	HSM       HSM
	Batches   Batches
	Spool     Spool
	// Ledger registers each finished card for the batch's event.
	Ledger CardRegistrar
	// Rand is the source of QR tokens; nil means crypto/rand.
	Rand   io.Reader
	Logger *slog.Logger
}

// Station personalizes the cards of one batch. It is not safe for
// concurrent use: one station drives one reader.
type Station struct {
	cfg     Config
	layout  personalize.Layout
	log     *slog.Logger
	rand    io.Reader
	eventKy keyderiv.AESKey
	// labels and piccL are the batch's pinned base key versions, so that a
	// half-done card is finished with the keys it was started with.
	labels   map[personalize.Role]keys.Label
	piccL    keys.Label
	debitVer int
	times    Times
}

// Times splits the time spent on cards between the HSM, the card
// exchanges, the database and the label spool (a synced append); the rest
// is the station's own work.
type Times struct {
	Total, HSM, Card, DB, Spool time.Duration
	Cards                       int
}

// Result describes one card that went through the station.
type Result struct {
	UID     []byte             `json:"-"`
	UIDHex  string             `json:"uid"`
	CardID  personalize.CardID `json:"-"`
	Number  string             `json:"card_number"`
	Slot    int                `json:"slot"`
	Outcome Outcome            `json:"outcome"`
	// Complete is true when this card completed the batch.
	Complete bool `json:"batch_complete"`
	// Done is the number of finished cards of the batch after this one (0
	// when the card was not recorded now).
	Done int `json:"-"`
}

// New checks cfg, pins the batch's base key versions (the newest, unless
// an earlier station pinned them), derives the event debit key and
// registers in the ledger every card of the batch recorded so far (a no-op
// for cards registered already: it heals a station that died between
// recording a card and registering it).
func New(ctx context.Context, cfg Config) (*Station, error) {
	if cfg.HSM == nil || cfg.Batches == nil || cfg.Spool == nil || cfg.Ledger == nil {
		return nil, errors.New("station: HSM, store, label spool and ledger are required")
	}
	if err := qrpin.CheckPublicURL(cfg.PublicURL); err != nil {
		return nil, err
	}
	l := cfg.Batch.Layout
	if err := l.Validate(); err != nil {
		return nil, err
	}
	s := &Station{cfg: cfg, layout: l, log: cfg.Logger, rand: cfg.Rand, labels: map[personalize.Role]keys.Label{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	// The newest version of every base key, unless the batch has its
	// versions pinned already: then those.
	probe := bytes.Repeat([]byte{0x5A}, keyderiv.MinDiversificationInput)
	names := []string{keys.PICCMaster}
	for _, k := range l.Keys {
		names = append(names, k.Base)
	}
	newest := map[string]int{}
	for _, n := range names {
		lb, err := s.resolve(ctx, n, probe)
		if err != nil {
			return nil, err
		}
		newest[n] = lb.Version
	}
	pinned, err := cfg.Batches.PinKeyVersions(ctx, cfg.Batch.OrgID, cfg.Batch.No, newest)
	if err != nil {
		return nil, fmt.Errorf("station: %w", err)
	}
	label := func(name string) (keys.Label, error) {
		v, ok := pinned[name]
		if !ok {
			return keys.Label{}, fmt.Errorf("station: batch %d has no pinned version of %s", cfg.Batch.No, name)
		}
		return keys.Label{Name: name, Version: v}, nil
	}
	if s.piccL, err = label(keys.PICCMaster); err != nil {
		return nil, err
	}
	for _, k := range l.Keys {
		if s.labels[k.Role], err = label(k.Base); err != nil {
			return nil, err
		}
	}
	dl := s.labels[personalize.RoleDebit]
	s.eventKy, _, err = cfg.HSM.EventDebitKey(ctx, dl, cfg.Batch.OrgID, cfg.Batch.Event)
	if err != nil {
		return nil, fmt.Errorf("station: event debit key: %w", err)
	}
	s.debitVer = dl.Version
	for _, lb := range append([]keys.Label{s.piccL}, s.labelList()...) {
		if lb.Version < 1 || lb.Version > 255 {
			s.eventKy.Destroy()
			return nil, fmt.Errorf("station: key %s: a card key version is 1 to 255", lb)
		}
	}
	if err := s.registerRecorded(ctx); err != nil {
		s.eventKy.Destroy()
		return nil, err
	}
	return s, nil
}

// registerRecorded registers every recorded card of the batch in the ledger.
func (s *Station) registerRecorded(ctx context.Context) error {
	b := s.cfg.Batch
	cards, err := s.cfg.Batches.Cards(ctx, b.OrgID, b.No)
	if err != nil {
		return fmt.Errorf("station: %w", err)
	}
	var uids [][]byte
	for _, c := range cards {
		if c.Status == batch.StatusDone {
			uids = append(uids, c.UID)
		}
	}
	// With no card recorded yet, this checks that the ledger knows the
	// event before the first card is written. It is the station's start,
	// not a card's time, so Times leaves it out (its parts stay within
	// Total).
	return s.enterCards(ctx, uids)
}

// register enters cards of the batch into the ledger, as a card's
// database time.
func (s *Station) register(ctx context.Context, uids ...[]byte) error {
	return s.timeDB(func() error { return s.enterCards(ctx, uids) })
}

func (s *Station) enterCards(ctx context.Context, uids [][]byte) error {
	b := s.cfg.Batch
	if err := s.cfg.Ledger.RegisterCards(ctx, b.OrgID, b.Event, uids); err != nil {
		return fmt.Errorf("station: register cards of batch %d in the ledger under event %q: %w", b.No, b.Event, err)
	}
	return nil
}

func (s *Station) resolve(ctx context.Context, name string, probe []byte) (keys.Label, error) {
	k, used, err := s.cfg.HSM.Diversify(ctx, keys.Label{Name: name}, probe)
	if err != nil {
		return keys.Label{}, fmt.Errorf("station: key %s: %w", name, err)
	}
	k.Destroy()
	return used, nil
}

func (s *Station) labelList() []keys.Label {
	var out []keys.Label
	for _, k := range s.layout.Keys {
		out = append(out, s.labels[k.Role])
	}
	return out
}

// KeyVersions returns the base key versions the station writes, by name.
func (s *Station) KeyVersions() map[string]int {
	m := map[string]int{s.piccL.Name: s.piccL.Version}
	for _, l := range s.labelList() {
		m[l.Name] = l.Version
	}
	return m
}

// Times returns the accumulated time shares of the cards so far.
func (s *Station) Times() Times { return s.times }

// Close forgets the event debit key.
func (s *Station) Close() { s.eventKy.Destroy() }

// cardKeys are the diversified keys of one card.
type cardKeys struct {
	picc desfire.Key
	app  map[byte]desfire.Key // by key number
}

func (k cardKeys) wipe() {
	k.picc.Wipe()
	for _, v := range k.app {
		v.Wipe()
	}
}

func (s *Station) timeHSM(f func() error) error {
	t := time.Now()
	err := f()
	s.times.HSM += time.Since(t)
	return err
}

func (s *Station) timeDB(f func() error) error {
	t := time.Now()
	err := f()
	s.times.DB += time.Since(t)
	return err
}

// deriveKeys derives the card's PICC master key and application keys: in the
// HSM from the base keys, and key 1 from the event debit key in Go.
func (s *Station) deriveKeys(ctx context.Context, uid []byte) (ck cardKeys, err error) {
	aid := s.layout.AID
	sys := []byte(s.layout.SystemID)
	mPICC, err := keyderiv.DiversificationInput(uid, []byte{0, 0, 0}, sys)
	if err != nil {
		return ck, err
	}
	mApp, err := keyderiv.DiversificationInput(uid, aid[:], sys)
	if err != nil {
		return ck, err
	}
	ck.app = map[byte]desfire.Key{}
	defer func() {
		if err != nil {
			ck.wipe()
		}
	}()
	toCard := func(k keyderiv.AESKey, version int) (desfire.Key, error) {
		b := k.Bytes()
		defer clear(b)
		k.Destroy()
		return desfire.NewAESKey(b, byte(version))
	}
	err = s.timeHSM(func() error {
		k, _, err := s.cfg.HSM.Diversify(ctx, s.piccL, mPICC)
		if err != nil {
			return err
		}
		if ck.picc, err = toCard(k, s.piccL.Version); err != nil {
			return err
		}
		for _, ak := range s.layout.Keys {
			l := s.labels[ak.Role]
			var k keyderiv.AESKey
			if ak.Role == personalize.RoleDebit {
				k, err = keyderiv.AN10922(s.eventKy, mApp)
			} else {
				k, _, err = s.cfg.HSM.Diversify(ctx, l, mApp)
			}
			if err != nil {
				return err
			}
			if ck.app[ak.No], err = toCard(k, l.Version); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return ck, fmt.Errorf("station: derive card keys: %w", err)
	}
	return ck, nil
}

// timedTransmitter measures the card exchanges.
type timedTransmitter struct {
	t     desfire.Transmitter
	spent *time.Duration
}

func (tt timedTransmitter) Transmit(apdu []byte) ([]byte, error) {
	t := time.Now()
	r, err := tt.t.Transmit(apdu)
	*tt.spent += time.Since(t)
	return r, err
}

// cardState is what the station finds on a card before touching it.
type cardState int

const (
	stateBlank cardState = iota + 1 // factory PICC master key, no applications
	stateOurs                       // PICC master key is the card's diversified key
)

// Personalize takes one card in the field through the station. Errors wrap
// ErrForeign, ErrTorn, ErrOtherBatch, ErrMismatch, batch.ErrFull, or are
// failures of the HSM, the database or the spool; a card that failed for any
// reason can be presented again.
func (s *Station) Personalize(ctx context.Context, card reader.Card) (res Result, err error) {
	start := time.Now()
	defer func() {
		s.times.Total += time.Since(start)
		s.times.Cards++
		if err != nil && errors.Is(err, reader.ErrRemoved) && !errors.Is(err, ErrTorn) {
			err = fmt.Errorf("%w: %w", ErrTorn, err)
		}
	}()
	uid, err := s.timeCard(card.UID)
	if err != nil {
		return res, fmt.Errorf("station: read UID: %w", err)
	}
	if len(uid) != 7 {
		return res, fmt.Errorf("%w: UID of %d bytes; the station needs the 7-byte UID (random UID cards are not supported)", ErrMismatch, len(uid))
	}
	res.UID, res.UIDHex = uid, fmt.Sprintf("%X", uid)
	ck, err := s.deriveKeys(ctx, uid)
	if err != nil {
		return res, err
	}
	defer ck.wipe()

	c := desfire.New(timedTransmitter{card, &s.times.Card}, desfire.WithLogger(s.log))
	state, err := s.recognise(c, ck)
	if err != nil {
		return res, err
	}
	b := s.cfg.Batch
	var r batch.Reservation
	err = s.timeDB(func() error {
		var err error
		r, err = s.cfg.Batches.Reserve(ctx, b.OrgID, b.No, uid)
		return err
	})
	var ob *batch.OtherBatchError
	if errors.As(err, &ob) {
		return res, fmt.Errorf("%w: %w", ErrOtherBatch, err)
	}
	if err != nil {
		return res, fmt.Errorf("station: %w", err)
	}
	res.CardID, res.Slot, res.Number = r.CardID, r.Slot, r.CardID.String()
	if r.Reassigned {
		s.log.Warn("slot taken over from a card that never came back", "batch", b.No, "slot", r.Slot)
	}
	info, err := personalize.CardInfo{KeyVersion: byte(s.debitVer), CardID: r.CardID, OrgID: b.OrgID, Event: b.Event}.MarshalBinary()
	if err != nil {
		return res, err
	}
	if r.Done {
		if state == stateBlank {
			return res, fmt.Errorf("%w: recorded as finished in slot %d but the card is blank", ErrMismatch, r.Slot)
		}
		if err := s.verify(c, ck, info); err != nil {
			return res, err
		}
		if err := s.register(ctx, uid); err != nil {
			return res, err
		}
		res.Outcome = AlreadyDone
		return res, nil
	}
	res.Outcome = Personalized
	if state == stateOurs {
		res.Outcome = Resumed
	}
	if err := s.write(c, ck, state, info); err != nil {
		return res, err
	}
	if err := s.verify(c, ck, info); err != nil {
		return res, err
	}
	p, err := s.record(ctx, r, uid)
	if err != nil {
		return res, err
	}
	res.Complete, res.Done = p.Complete, p.Done
	s.log.Info("card finished", "batch", b.No, "card", res.Number, "outcome", res.Outcome)
	return res, nil
}

func (s *Station) timeCard(f func() ([]byte, error)) ([]byte, error) {
	t := time.Now()
	b, err := f()
	s.times.Card += time.Since(t)
	return b, err
}

// recognise authenticates at the card level with the factory key, then
// with the card's own key. It leaves the client authenticated.
func (s *Station) recognise(c *desfire.Card, ck cardKeys) (cardState, error) {
	errDefault := c.AuthenticateLegacy(0, desfire.DefaultDESKey())
	if errDefault != nil && !refused(errDefault) {
		return 0, step("authenticate with the factory key", errDefault)
	}
	if errDefault == nil {
		aids, err := c.GetApplicationIDs()
		if err != nil {
			return 0, fmt.Errorf("station: list applications: %w", err)
		}
		if len(aids) > 0 {
			return 0, fmt.Errorf("%w (factory card key, but %d applications)", ErrForeign, len(aids))
		}
		return stateBlank, nil
	}
	err := c.AuthenticateEV2First(0, ck.picc)
	if err != nil && !refused(err) {
		return 0, step("authenticate with the card master key", err)
	}
	if err != nil {
		return 0, ErrForeign
	}
	return stateOurs, nil
}

// refused tells a card that refused an authentication (a status, or a
// cryptogram that does not verify: the key is not the card's) from an
// exchange that failed.
func refused(err error) bool {
	var se *desfire.StatusError
	return errors.As(err, &se) || errors.Is(err, desfire.ErrIntegrity)
}

func access(a personalize.Access) desfire.AccessRights {
	return desfire.AccessRights{Read: desfire.Access(a.Read), Write: desfire.Access(a.Write), ReadWrite: desfire.Access(a.ReadWrite), Change: desfire.Access(a.Change)}
}

func step(name string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("station: %s: %w", name, err)
}

// write brings the card from state to the layout. Every step first looks at
// the card, so that a card torn at any point is finished from where it was.
// The client is authenticated at the card level on entry.
func (s *Station) write(c *desfire.Card, ck cardKeys, state cardState, info []byte) error {
	l := s.layout
	if state == stateBlank {
		if err := c.ChangeKey(0, ck.picc, desfire.Key{}); err != nil {
			return step("change card master key", err)
		}
		if err := c.AuthenticateEV2First(0, ck.picc); err != nil {
			return step("authenticate with the new card master key", err)
		}
	}
	ks, err := c.GetKeySettings()
	if err != nil {
		return step("card key settings", err)
	}
	if ks.Settings != l.PICCKeySettings {
		if err := c.ChangeKeySettings(l.PICCKeySettings); err != nil {
			return step("change card key settings", err)
		}
	}
	aids, err := c.GetApplicationIDs()
	if err != nil {
		return step("list applications", err)
	}
	found := false
	for _, a := range aids {
		found = found || a == s.layout.AID.DESFire()
	}
	if !found {
		if err := c.CreateApplication(s.layout.AID.DESFire(), l.AppKeySettings, len(l.Keys), desfire.KeyAES); err != nil {
			return step("create application", err)
		}
	}
	if err := c.SelectApplication(s.layout.AID.DESFire()); err != nil {
		return step("select application", err)
	}
	master := ck.app[0]
	if err := c.AuthenticateEV2First(0, master); err != nil {
		if !refused(err) {
			return step("authenticate with the application master key", err)
		}
		if err := c.AuthenticateEV2First(0, zeroAES); err != nil {
			return fmt.Errorf("%w: application master key is neither ours nor the default: %w", ErrMismatch, err)
		}
		if err := c.ChangeKey(0, master, desfire.Key{}); err != nil {
			return step("change application master key", err)
		}
		if err := c.AuthenticateEV2First(0, master); err != nil {
			return step("authenticate with the new application master key", err)
		}
	}
	for _, k := range l.Keys {
		if k.No == 0 {
			continue
		}
		want := ck.app[k.No]
		v, err := c.GetKeyVersion(k.No)
		if err != nil {
			return step(fmt.Sprintf("version of key %d", k.No), err)
		}
		switch v {
		case want.Version():
			continue
		case 0:
		default:
			return fmt.Errorf("%w: key %d has version %d, neither the default 0 nor %d", ErrMismatch, k.No, v, want.Version())
		}
		if err := c.ChangeKey(k.No, want, zeroAES); err != nil {
			return step(fmt.Sprintf("change key %d", k.No), err)
		}
	}
	ids, err := c.GetFileIDs()
	if err != nil {
		return step("list files", err)
	}
	for _, f := range l.Files() {
		if bytes.IndexByte(ids, f.No) >= 0 {
			fs, err := c.GetFileSettings(f.No)
			if err != nil {
				return step(fmt.Sprintf("settings of file %d", f.No), err)
			}
			if !matches(f, fs) {
				return fmt.Errorf("%w: file %d exists with other settings", ErrMismatch, f.No)
			}
			continue
		}
		if err := createFile(c, f); err != nil {
			return step(fmt.Sprintf("create file %d", f.No), err)
		}
	}
	ci := l.CardInfo
	if err := c.WriteData(ci.No, 0, info, ci.Comm.DESFire()); err != nil {
		return step("write card info", err)
	}
	if ci.Kind == personalize.BackupData {
		if err := c.CommitTransaction(); err != nil {
			return step("commit card info", err)
		}
	}
	return nil
}

var zeroAES = func() desfire.Key {
	k, err := desfire.NewAESKey(make([]byte, 16), 0)
	if err != nil {
		panic(err)
	}
	return k
}()

var fileTypes = map[personalize.FileKind]desfire.FileType{
	personalize.StdData:      desfire.FileStandard,
	personalize.BackupData:   desfire.FileBackup,
	personalize.Value:        desfire.FileValue,
	personalize.CyclicRecord: desfire.FileCyclicRecord,
}

func matches(f personalize.File, fs desfire.FileSettings) bool {
	if fs.Type != fileTypes[f.Kind] || fs.Comm != f.Comm.DESFire() || fs.Access != access(f.Access) {
		return false
	}
	switch f.Kind {
	case personalize.StdData, personalize.BackupData:
		return fs.Size == f.Size
	case personalize.Value:
		return fs.Lower == f.Lower && fs.Upper == f.Upper && fs.LimitedCreditEnabled == f.LimitedCredit
	case personalize.CyclicRecord:
		return fs.RecordSize == f.RecordSize && fs.MaxRecords == f.Records
	}
	return false
}

func createFile(c *desfire.Card, f personalize.File) error {
	m, a := f.Comm.DESFire(), access(f.Access)
	switch f.Kind {
	case personalize.StdData:
		return c.CreateStdDataFile(f.No, m, a, f.Size)
	case personalize.BackupData:
		return c.CreateBackupDataFile(f.No, m, a, f.Size)
	case personalize.Value:
		return c.CreateValueFile(f.No, m, a, f.Lower, f.Upper, f.Initial, f.LimitedCredit)
	case personalize.CyclicRecord:
		return c.CreateCyclicRecordFile(f.No, m, a, f.RecordSize, f.Records)
	}
	return fmt.Errorf("unknown file kind %q", f.Kind)
}

// readerKey is the key that may read a file: its read right, else its
// read-write right.
func readerKey(a personalize.Access) (byte, bool) {
	for _, k := range []personalize.KeyNo{a.Read, a.ReadWrite} {
		if k <= 13 {
			return byte(k), true
		}
	}
	return 0, false
}

// verify reads the card back with its new keys in a fresh session: the
// card master key, every application key, the card info and the balance.
func (s *Station) verify(c *desfire.Card, ck cardKeys, info []byte) error {
	l := s.layout
	if err := c.SelectApplication(0); err != nil {
		return step("verify: select card level", err)
	}
	if err := c.AuthenticateEV2First(0, ck.picc); err != nil {
		return s.verifyErr("card master key", err)
	}
	if err := c.SelectApplication(s.layout.AID.DESFire()); err != nil {
		return step("verify: select application", err)
	}
	for _, k := range l.Keys {
		if err := c.AuthenticateEV2First(k.No, ck.app[k.No]); err != nil {
			return s.verifyErr(fmt.Sprintf("key %d", k.No), err)
		}
		if kn, ok := readerKey(l.CardInfo.Access); ok && kn == k.No {
			got, err := c.ReadData(l.CardInfo.No, 0, len(info), l.CardInfo.Comm.DESFire())
			if err != nil {
				return s.verifyErr("card info", err)
			}
			if !bytes.Equal(got, info) {
				return fmt.Errorf("%w: card info read back differs", ErrMismatch)
			}
		}
		if kn, ok := readerKey(l.Balance.Access); ok && kn == k.No {
			v, err := c.GetValue(l.Balance.No, l.Balance.Comm.DESFire())
			if err != nil {
				return s.verifyErr("balance", err)
			}
			if v != l.Balance.Initial {
				return fmt.Errorf("%w: balance is %d, want %d", ErrMismatch, v, l.Balance.Initial)
			}
		}
	}
	return nil
}

func (s *Station) verifyErr(what string, err error) error {
	if errors.Is(err, reader.ErrRemoved) {
		return err
	}
	return fmt.Errorf("%w: verify %s: %w", ErrMismatch, what, err)
}

// record makes the card's QR token and PIN, writes its label to the spool
// (synced), records the card with the token's hash and the PIN's
// verification value, and registers it in the ledger. A crash between the
// first two leaves a label for a card that is still reserved: it is
// relabelled when presented again, and the later label replaces the earlier
// one. A crash before the card is registered is healed by the next station
// on the batch (New) or when the card is presented again.
func (s *Station) record(ctx context.Context, r batch.Reservation, uid []byte) (p batch.Progress, err error) {
	raw := make([]byte, qrpin.TokenSize)
	defer clear(raw)
	if _, err := io.ReadFull(s.rand, raw); err != nil {
		return p, fmt.Errorf("station: token: %w", err)
	}
	tok, err := qrpin.NewToken(raw)
	if err != nil {
		return p, err
	}
	defer tok.Destroy()
	var pin keys.PIN
	var pvv keys.PVV
	err = s.timeHSM(func() error {
		var err error
		if pin, err = s.cfg.HSM.NewPIN(ctx); err != nil {
			return err
		}
		pvv, err = s.cfg.HSM.PINVerificationValue(ctx, uid, pin)
		return err
	})
	if err != nil {
		return p, fmt.Errorf("station: PIN: %w", err)
	}
	defer pin.Destroy()
	t := time.Now()
	err = s.cfg.Spool.Append(labels.Label{Number: r.CardID.String(), Token: tok, PIN: pin})
	s.times.Spool += time.Since(t)
	if err != nil {
		return p, fmt.Errorf("station: %w", err)
	}
	b := s.cfg.Batch
	err = s.timeDB(func() error {
		var err error
		p, err = s.cfg.Batches.Finish(ctx, b.OrgID, b.No, r.Slot, uid, batch.Finished{
			KeyVersions: s.KeyVersions(), TokenHash: tok.Hash(), PVV: pvv.MAC, PVVKeyVersion: pvv.KeyVersion,
			Also: func(q *pgx.Batch) { s.cfg.Ledger.QueueRegisterCards(q, b.OrgID, b.Event, [][]byte{uid}) },
		})
		return err
	})
	if err != nil {
		return p, fmt.Errorf("station: record the card and register it in the ledger under event %q: %w", b.Event, err)
	}
	return p, nil
}

package terminal

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/loopcard/loopcard/keys/keyderiv"
	"github.com/loopcard/loopcard/ledger/txid"
	"github.com/loopcard/loopcard/personalize"
	"github.com/loopcard/loopcard/personalize/desfire"
)

// Card is a card in the terminal's field: a PC/SC card, or a virtual one.
type Card interface {
	UID() ([]byte, error)
	Transmit(apdu []byte) ([]byte, error)
}

// Errors of card operations that callers branch on.
var (
	// ErrInsufficient: the card holds less than the amount.
	ErrInsufficient = errors.New("terminal: insufficient balance on the card")
	// ErrUncertain: the card left the field (or the link failed) during
	// CommitTransaction, so it is not known whether it committed. Present
	// the card again: the transaction is resolved from the card.
	ErrUncertain = errors.New("terminal: card left during commit: present it again")
	// ErrUnresolved: a transaction of this card has an unknown outcome that
	// the card could not settle; no new payment is taken from it here.
	ErrUnresolved = errors.New("terminal: an earlier transaction of this card cannot be resolved")
)

// Record kinds in the card's recent file.
const (
	RecordDebit  = 1
	RecordCredit = 2
)

// RecordSize is the length of the part of a recent record that Loopcard
// writes: kind, transaction id, card sequence, amount, time (Unix seconds)
// and the first 3 bytes of SHA-256 of the terminal or store id.
const RecordSize = 1 + 16 + 4 + 4 + 4 + 3

// Record is one entry of the card's recent file.
type Record struct {
	Kind    byte
	ID      txid.ID
	CardSeq uint32
	Amount  uint32
	Unix    uint32
	Who     [3]byte
}

// MarshalBinary encodes the record in RecordSize bytes.
func (r Record) MarshalBinary() []byte {
	b := make([]byte, 0, RecordSize)
	b = append(b, r.Kind)
	b = append(b, r.ID[:]...)
	b = binary.BigEndian.AppendUint32(b, r.CardSeq)
	b = binary.BigEndian.AppendUint32(b, r.Amount)
	b = binary.BigEndian.AppendUint32(b, r.Unix)
	return append(b, r.Who[:]...)
}

// ParseRecord decodes a record of at least RecordSize bytes.
func ParseRecord(b []byte) (Record, error) {
	if len(b) < RecordSize {
		return Record{}, fmt.Errorf("terminal: record of %d bytes", len(b))
	}
	var r Record
	r.Kind = b[0]
	copy(r.ID[:], b[1:17])
	r.CardSeq = binary.BigEndian.Uint32(b[17:21])
	r.Amount = binary.BigEndian.Uint32(b[21:25])
	r.Unix = binary.BigEndian.Uint32(b[25:29])
	copy(r.Who[:], b[29:32])
	return r, nil
}

// WhoHash is the 3-byte tag of a terminal or store id in records.
func WhoHash(id string) [3]byte {
	h := sha256.Sum256([]byte(id))
	return [3]byte{h[0], h[1], h[2]}
}

// EncodeSeq and DecodeSeq are the sequence file's content: the card's
// transaction counter as a big-endian uint64 (at most 2^32-1).
func EncodeSeq(seq uint32, size int) []byte {
	b := make([]byte, size)
	binary.BigEndian.PutUint64(b[size-8:], uint64(seq))
	return b
}

// DecodeSeq is the inverse of EncodeSeq.
func DecodeSeq(b []byte) (uint32, error) {
	if len(b) < 8 {
		return 0, fmt.Errorf("terminal: sequence file of %d bytes", len(b))
	}
	v := binary.BigEndian.Uint64(b[len(b)-8:])
	if v > 0xFFFFFFFF {
		return 0, fmt.Errorf("terminal: card sequence %d out of range", v)
	}
	return uint32(v), nil
}

// App is the Loopcard application as a terminal or store addresses it.
type App struct{ Layout personalize.Layout }

// CardKey derives a card's application key from a base AES key (the event
// debit key for key 1) with AN10922 over UID || AID || SystemID, in Go.
func (a App) CardKey(base keyderiv.AESKey, uid []byte, version byte) (desfire.Key, error) {
	m, err := keyderiv.DiversificationInput(uid, a.Layout.AID[:], []byte(a.Layout.SystemID))
	if err != nil {
		return desfire.Key{}, err
	}
	k, err := keyderiv.AN10922(base, m)
	if err != nil {
		return desfire.Key{}, err
	}
	defer k.Destroy()
	b := k.Bytes()
	defer clear(b)
	return desfire.NewAESKey(b, version)
}

// State is what a terminal reads from a card before a transaction.
type State struct {
	Balance int64
	Seq     uint32
}

// Session is an authenticated conversation with one card's application.
type Session struct {
	app App
	c   *desfire.Card
}

// Open selects the application and authenticates with key number keyNo.
func (a App) Open(card Card, keyNo byte, key desfire.Key) (*Session, error) {
	c := desfire.New(card)
	if err := c.SelectApplication(a.Layout.AID.DESFire()); err != nil {
		return nil, fmt.Errorf("terminal: select application: %w", err)
	}
	if err := c.AuthenticateEV2First(keyNo, key); err != nil {
		return nil, fmt.Errorf("terminal: authenticate key %d: %w", keyNo, err)
	}
	return &Session{app: a, c: c}, nil
}

// Read returns the committed balance and card sequence.
func (s *Session) Read() (State, error) {
	l := s.app.Layout
	v, err := s.c.GetValue(l.Balance.No, l.Balance.Comm.DESFire())
	if err != nil {
		return State{}, fmt.Errorf("terminal: read balance: %w", err)
	}
	b, err := s.c.ReadData(l.Sequence.No, 0, l.Sequence.Size, l.Sequence.Comm.DESFire())
	if err != nil {
		return State{}, fmt.Errorf("terminal: read sequence: %w", err)
	}
	seq, err := DecodeSeq(b)
	if err != nil {
		return State{}, err
	}
	return State{Balance: int64(v), Seq: seq}, nil
}

// Info reads the card info file (the card's number, organizer and event).
func (s *Session) Info() (personalize.CardInfo, error) {
	l := s.app.Layout
	b, err := s.c.ReadData(l.CardInfo.No, 0, l.CardInfo.Size, l.CardInfo.Comm.DESFire())
	if err != nil {
		return personalize.CardInfo{}, fmt.Errorf("terminal: read card info: %w", err)
	}
	var ci personalize.CardInfo
	if err := ci.UnmarshalBinary(b); err != nil {
		return personalize.CardInfo{}, err
	}
	return ci, nil
}

// Records returns the card's recent records, oldest first (none when the
// file is empty).
func (s *Session) Records() ([]Record, error) {
	l := s.app.Layout
	b, err := s.c.ReadRecords(l.Recent.No, 0, 0, l.Recent.RecordSize, l.Recent.Comm.DESFire())
	if errors.Is(err, desfire.ErrBoundary) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("terminal: read records: %w", err)
	}
	var out []Record
	for len(b) >= l.Recent.RecordSize {
		r, err := ParseRecord(b[:l.Recent.RecordSize])
		if err != nil {
			return nil, err
		}
		out = append(out, r)
		b = b[l.Recent.RecordSize:]
	}
	return out, nil
}

// Stage prepares a debit (amount > 0) or credit (amount < 0 credits -amount)
// that moves the card from st to the next sequence, with record r; nothing
// changes on the card until Commit.
func (s *Session) Stage(st State, amount int64, r Record) error {
	l := s.app.Layout
	var err error
	if amount > 0 {
		err = s.c.Debit(l.Balance.No, int32(amount), l.Balance.Comm.DESFire())
	} else {
		err = s.c.Credit(l.Balance.No, int32(-amount), l.Balance.Comm.DESFire())
	}
	if err != nil {
		return fmt.Errorf("terminal: stage value: %w", err)
	}
	if err := s.c.WriteData(l.Sequence.No, 0, EncodeSeq(st.Seq+1, l.Sequence.Size), l.Sequence.Comm.DESFire()); err != nil {
		return fmt.Errorf("terminal: stage sequence: %w", err)
	}
	rec := make([]byte, l.Recent.RecordSize)
	copy(rec, r.MarshalBinary())
	if err := s.c.WriteRecord(l.Recent.No, 0, rec, l.Recent.Comm.DESFire()); err != nil {
		return fmt.Errorf("terminal: stage record: %w", err)
	}
	return nil
}

// Commit sends CommitTransaction. An error that is a card status means the
// card kept its old state; any other error (the card left, the link broke)
// is ErrUncertain.
func (s *Session) Commit() error {
	err := s.c.CommitTransaction()
	if err == nil {
		return nil
	}
	var se *desfire.StatusError
	if errors.As(err, &se) {
		return fmt.Errorf("terminal: commit refused: %w", err)
	}
	return fmt.Errorf("%w: %w", ErrUncertain, err)
}

// Committed reports whether the transaction id with card sequence seq is
// on the card: known is false when the card moved on so far that its record
// may have left the cyclic file.
func (s *Session) Committed(id txid.ID, seq uint32, st State) (committed, known bool, err error) {
	if st.Seq < seq {
		return false, true, nil
	}
	recs, err := s.Records()
	if err != nil {
		return false, false, err
	}
	for _, r := range recs {
		if r.ID == id && r.CardSeq == seq {
			return true, true, nil
		}
	}
	keep := uint32(s.app.Layout.Recent.Records - 1)
	return false, st.Seq-seq < keep, nil
}

func newCardKey(b []byte) (desfire.Key, error) { return desfire.NewAESKey(b, 0) }

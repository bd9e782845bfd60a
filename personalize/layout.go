// Package personalize describes the Loopcard application on a DESFire card:
// its layout (AID, keys and their roles, files, access rights, communication
// modes, value limits, record geometry) and the card info record written to
// it. The personalization station writes cards from a Layout and terminals
// read them with the same Layout; subpackages hold the DESFire protocol, the
// readers, the station itself and the QR+PIN labels.
package personalize

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ErrLayout is wrapped by every error of Layout.Validate.
var ErrLayout = errors.New("invalid card layout")

// AID is a 3-byte DESFire application identifier, written as 6 hex digits
// in the order sent to the card (least significant byte first).
type AID [3]byte

// String returns the AID as 6 upper-case hex digits.
func (a AID) String() string { return strings.ToUpper(hex.EncodeToString(a[:])) }

// MarshalText implements encoding.TextMarshaler.
func (a AID) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *AID) UnmarshalText(b []byte) error {
	v, err := ParseAID(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// ParseAID parses 6 hex digits.
func ParseAID(s string) (AID, error) {
	var a AID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 3 {
		return a, fmt.Errorf("%w: AID %q is not 6 hex digits", ErrLayout, s)
	}
	copy(a[:], b)
	return a, nil
}

// KeyNo is a DESFire key number in an access right: 0 to 13 name a key of
// the application, Free grants access without authentication and Never
// denies it.
type KeyNo byte

// Special access values of DESFire access rights.
const (
	Free  KeyNo = 0xE
	Never KeyNo = 0xF
)

// Role is what an application key is for.
type Role string

// The roles of the application keys (docs/design.md, The card).
const (
	RoleMaster Role = "master" // key 0: application master, changes keys and files
	RoleDebit  Role = "debit"  // key 1: terminals of one event
	RoleCredit Role = "credit" // key 2: top-ups, derived per load on the server
	RoleRead   Role = "read"   // key 3: card info and records
)

// AppKey is one AES key of the application.
type AppKey struct {
	No   byte `json:"no"`
	Role Role `json:"role"`
	// Base is the name of the base key of the hierarchy (keys package) the
	// card key is diversified from, such as "app-debit".
	Base string `json:"base"`
}

// Access is the access-rights word of a DESFire file: which key may read,
// write, read and write, and change the file's settings.
type Access struct {
	Read      KeyNo `json:"read"`
	Write     KeyNo `json:"write"`
	ReadWrite KeyNo `json:"read_write"`
	Change    KeyNo `json:"change"`
}

// Bytes returns the two access-rights bytes as sent to the card: RW<<4|Change,
// then Read<<4|Write.
func (a Access) Bytes() [2]byte {
	return [2]byte{byte(a.ReadWrite)<<4 | byte(a.Change), byte(a.Read)<<4 | byte(a.Write)}
}

// AccessFromBytes is the inverse of Access.Bytes.
func AccessFromBytes(b [2]byte) Access {
	return Access{Read: KeyNo(b[1] >> 4), Write: KeyNo(b[1] & 0xF), ReadWrite: KeyNo(b[0] >> 4), Change: KeyNo(b[0] & 0xF)}
}

// CommMode is the communication mode of a file, as coded in DESFire file
// settings.
type CommMode byte

// DESFire communication modes.
const (
	CommPlain CommMode = 0x00
	CommMAC   CommMode = 0x01
	CommFull  CommMode = 0x03
)

var commNames = map[CommMode]string{CommPlain: "plain", CommMAC: "mac", CommFull: "full"}

// String returns plain, mac or full.
func (m CommMode) String() string {
	if s, ok := commNames[m]; ok {
		return s
	}
	return fmt.Sprintf("comm(%d)", byte(m))
}

// MarshalText implements encoding.TextMarshaler.
func (m CommMode) MarshalText() ([]byte, error) {
	if _, ok := commNames[m]; !ok {
		return nil, fmt.Errorf("%w: communication mode %d", ErrLayout, byte(m))
	}
	return []byte(m.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (m *CommMode) UnmarshalText(b []byte) error {
	for k, v := range commNames {
		if v == string(b) {
			*m = k
			return nil
		}
	}
	return fmt.Errorf("%w: communication mode %q: want plain, mac or full", ErrLayout, b)
}

// FileKind is the DESFire file type.
type FileKind string

// DESFire file types used by the layout.
const (
	StdData      FileKind = "std-data"
	BackupData   FileKind = "backup-data"
	Value        FileKind = "value"
	CyclicRecord FileKind = "cyclic-record"
)

// File describes one file of the application. Size applies to data files;
// Lower, Upper, Initial and LimitedCredit to value files; RecordSize and
// Records to record files (Records counts the slot DESFire keeps free, so a
// cyclic file holds Records-1 entries).
type File struct {
	No     byte     `json:"no"`
	Kind   FileKind `json:"kind"`
	Comm   CommMode `json:"comm"`
	Access Access   `json:"access"`

	Size int `json:"size,omitempty"`

	Lower         int32 `json:"lower,omitempty"`
	Upper         int32 `json:"upper,omitempty"`
	Initial       int32 `json:"initial,omitempty"`
	LimitedCredit bool  `json:"limited_credit,omitempty"`

	RecordSize int `json:"record_size,omitempty"`
	Records    int `json:"records,omitempty"`
}

// Layout is the whole description of the Loopcard application on a card.
// The zero value is not valid; start from DefaultLayout and change what an
// organizer or event needs, then Validate.
type Layout struct {
	AID AID `json:"aid"`
	// SystemID is the AN10922 system identifier appended to UID || AID in
	// every key diversification; 6 to 21 bytes keep the input within what
	// the HSM diversifies exactly.
	SystemID string `json:"system_id"`
	// PICCKeySettings and AppKeySettings are the DESFire key-settings bytes
	// of the card and of the application.
	PICCKeySettings byte `json:"picc_key_settings"`
	AppKeySettings  byte `json:"app_key_settings"`

	Keys []AppKey `json:"keys"`

	CardInfo File `json:"card_info"`
	Balance  File `json:"balance"`
	Sequence File `json:"sequence"`
	Recent   File `json:"recent"`
}

// Key settings used by DefaultLayout: the master key can be changed,
// configuration can be changed, and listing and creating need the master key
// (free listing and free creation off).
const DefaultKeySettings byte = 0x09

// Default file numbers.
const (
	FileCardInfo byte = 1
	FileBalance  byte = 2
	FileSequence byte = 3
	FileRecent   byte = 4
)

// DefaultLayout returns the application of docs/design.md. Access rights follow
// its table where DESFire can express them; one deviation: DESFire lets every
// key with the read right of a value file also debit it, so the balance is
// readable by the debit and credit keys only, not by the read key.
func DefaultLayout() Layout {
	return Layout{
		AID:             AID{0x4C, 0x43, 0x01},
		SystemID:        "LOOPCARD",
		PICCKeySettings: DefaultKeySettings,
		AppKeySettings:  DefaultKeySettings,
		Keys: []AppKey{
			{No: 0, Role: RoleMaster, Base: "app-master"},
			{No: 1, Role: RoleDebit, Base: "app-debit"},
			{No: 2, Role: RoleCredit, Base: "app-credit"},
			{No: 3, Role: RoleRead, Base: "app-read"},
		},
		CardInfo: File{No: FileCardInfo, Kind: StdData, Comm: CommMAC, Size: CardInfoSize,
			Access: Access{Read: 3, Write: 0, ReadWrite: 0, Change: 0}},
		Balance: File{No: FileBalance, Kind: Value, Comm: CommFull, Lower: 0, Upper: 100000,
			Access: Access{Read: 1, Write: 1, ReadWrite: 2, Change: 0}},
		Sequence: File{No: FileSequence, Kind: BackupData, Comm: CommFull, Size: 8,
			Access: Access{Read: 2, Write: 2, ReadWrite: 1, Change: 0}},
		Recent: File{No: FileRecent, Kind: CyclicRecord, Comm: CommFull, RecordSize: 32, Records: 11,
			Access: Access{Read: 3, Write: 2, ReadWrite: 1, Change: 0}},
	}
}

// Files returns the files in the order the station creates them.
func (l *Layout) Files() []File { return []File{l.CardInfo, l.Balance, l.Sequence, l.Recent} }

// Key returns the application key of role r.
func (l *Layout) Key(r Role) (AppKey, bool) {
	for _, k := range l.Keys {
		if k.Role == r {
			return k, true
		}
	}
	return AppKey{}, false
}

// maxFileSize bounds data files and records to what fits comfortably on a
// 2 KB card next to the other files.
const maxFileSize = 1024

// Validate checks the layout and returns an error wrapping ErrLayout that
// names every problem found.
func (l *Layout) Validate() error {
	var probs []string
	add := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }

	if l.AID == (AID{}) {
		add("AID 000000 is the card level, not an application")
	}
	if n := len(l.SystemID); n < 6 || n > 21 {
		add("system identifier is %d bytes, want 6 to 21", n)
	}
	if l.PICCKeySettings&0x06 != 0 {
		add("card key settings %02X allow free listing or creation", l.PICCKeySettings)
	}
	if l.AppKeySettings&0x04 != 0 {
		add("application key settings %02X allow free file creation", l.AppKeySettings)
	}
	roles := map[Role]bool{}
	nos := map[byte]bool{}
	for _, k := range l.Keys {
		switch {
		case k.No > 13:
			add("key number %d is above 13", k.No)
		case nos[k.No]:
			add("key number %d appears twice", k.No)
		}
		nos[k.No] = true
		switch k.Role {
		case RoleMaster, RoleDebit, RoleCredit, RoleRead:
		default:
			add("key %d has unknown role %q", k.No, k.Role)
		}
		if roles[k.Role] {
			add("role %s appears twice", k.Role)
		}
		roles[k.Role] = true
		if k.Base == "" {
			add("key %d has no base key", k.No)
		}
	}
	for _, r := range []Role{RoleMaster, RoleDebit, RoleCredit, RoleRead} {
		if !roles[r] {
			add("no %s key", r)
		}
	}
	if m, ok := l.Key(RoleMaster); ok && m.No != 0 {
		add("the master key must be key 0, not %d", m.No)
	}
	for i := range len(l.Keys) {
		if !nos[byte(i)] {
			add("keys must be numbered 0 to %d without gaps", len(l.Keys)-1)
			break
		}
	}

	fnos := map[byte]bool{}
	for _, f := range []struct {
		name  string
		f     File
		kinds []FileKind
	}{
		{"card info", l.CardInfo, []FileKind{StdData, BackupData}},
		{"balance", l.Balance, []FileKind{Value}},
		{"sequence", l.Sequence, []FileKind{BackupData}},
		{"recent", l.Recent, []FileKind{CyclicRecord}},
	} {
		for _, p := range f.f.problems(nos, f.kinds) {
			add("%s file: %s", f.name, p)
		}
		if fnos[f.f.No] {
			add("%s file: number %d is used twice", f.name, f.f.No)
		}
		fnos[f.f.No] = true
	}
	if l.CardInfo.Size < CardInfoSize {
		add("card info file: %d bytes, want at least %d", l.CardInfo.Size, CardInfoSize)
	}
	if l.Sequence.Size < 4 {
		add("sequence file: %d bytes, want at least 4", l.Sequence.Size)
	}
	if len(probs) > 0 {
		return fmt.Errorf("%w: %s", ErrLayout, strings.Join(probs, "; "))
	}
	return nil
}

func (f File) problems(keys map[byte]bool, kinds []FileKind) []string {
	var probs []string
	if f.No > 31 {
		probs = append(probs, fmt.Sprintf("number %d is above 31", f.No))
	}
	ok := false
	for _, k := range kinds {
		ok = ok || f.Kind == k
	}
	if !ok {
		probs = append(probs, fmt.Sprintf("kind %q, want one of %v", f.Kind, kinds))
	}
	if _, ok := commNames[f.Comm]; !ok {
		probs = append(probs, fmt.Sprintf("communication mode %d", byte(f.Comm)))
	}
	for _, r := range []struct {
		name string
		k    KeyNo
	}{{"read", f.Access.Read}, {"write", f.Access.Write}, {"read-write", f.Access.ReadWrite}, {"change", f.Access.Change}} {
		if r.k != Free && r.k != Never && !keys[byte(r.k)] {
			probs = append(probs, fmt.Sprintf("%s right names key %d, which the application does not have", r.name, r.k))
		}
	}
	switch f.Kind {
	case StdData, BackupData:
		if f.Size < 1 || f.Size > maxFileSize {
			probs = append(probs, fmt.Sprintf("size %d, want 1 to %d", f.Size, maxFileSize))
		}
	case Value:
		if f.Lower < 0 {
			probs = append(probs, fmt.Sprintf("lower limit %d is negative", f.Lower))
		}
		if f.Upper <= f.Lower {
			probs = append(probs, fmt.Sprintf("upper limit %d is not above lower limit %d", f.Upper, f.Lower))
		}
		if f.Initial < f.Lower || f.Initial > f.Upper {
			probs = append(probs, fmt.Sprintf("initial value %d is outside the limits", f.Initial))
		}
	case CyclicRecord:
		if f.RecordSize < 1 || f.RecordSize > maxFileSize {
			probs = append(probs, fmt.Sprintf("record size %d, want 1 to %d", f.RecordSize, maxFileSize))
		}
		if f.Records < 2 || f.Records > 4*maxFileSize || f.RecordSize*f.Records > 4*maxFileSize {
			probs = append(probs, fmt.Sprintf("%d records of %d bytes: want at least 2 and at most %d bytes", f.Records, f.RecordSize, 4*maxFileSize))
		}
	}
	return probs
}

// ParseLayout decodes a JSON layout on top of DefaultLayout, so a file needs
// to name only what differs, and validates it. Unknown fields are errors.
func ParseLayout(b []byte) (Layout, error) {
	l := DefaultLayout()
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return Layout{}, fmt.Errorf("%w: %w", ErrLayout, err)
	}
	if err := l.Validate(); err != nil {
		return Layout{}, err
	}
	return l, nil
}

package vcard

import "slices"

// keyType is the cipher of a card key.
type keyType byte

const (
	keyDES    keyType = 0 // DES or 2K3DES: 16 bytes (DES when both halves are equal)
	key3K3DES keyType = 1 // 24 bytes
	keyAES    keyType = 2 // 16 bytes
)

// keyLen is the number of key bytes of t.
func (t keyType) keyLen() int {
	if t == key3K3DES {
		return 24
	}
	return 16
}

// cardKey is one key slot. Its bytes never leave the package except into the
// test state file.
type cardKey struct {
	typ     keyType
	value   []byte
	version byte
}

func newKey(t keyType) cardKey {
	return cardKey{typ: t, value: make([]byte, t.keyLen())}
}

func (k cardKey) clone() cardKey {
	k.value = slices.Clone(k.value)
	return k
}

// fileType is the DESFire file type byte of GetFileSettings.
type fileType byte

const (
	fileStd          fileType = 0
	fileBackup       fileType = 1
	fileValue        fileType = 2
	fileLinearRecord fileType = 3
	fileCyclicRecord fileType = 4
)

// Access right nibbles.
const (
	accessFree  = 0xE
	accessNever = 0xF
)

// file is one file of an application. Committed content is what a reader
// sees and what survives power loss; the pending fields hold the changes of
// the open transaction.
type file struct {
	typ  fileType
	comm byte // communication settings: 0 plain, 1 MAC, 3 full
	// access rights: read, write, read&write, change (key numbers or 0xE/0xF)
	read, write, readWrite, change byte

	// standard and backup data files
	data    []byte
	pending []byte // backup: mirror image being written, nil when untouched

	// value files
	lower, upper      int32
	value             int32
	limitedEnabled    bool
	freeGetValue      bool
	limitedValue      int32
	pendingValue      int32
	pendingTouched    bool
	pendingDebited    int32 // sum of the debits in the open transaction
	pendingLimitedUse bool

	// isoFID is the file's ISO/IEC 7816-4 file identifier, 0 for none.
	isoFID uint16

	// record files
	recordSize, maxRecords int
	records                [][]byte // committed, oldest first
	pendingRecord          []byte   // record being written, nil when none
}

// dirty reports whether the file has uncommitted changes.
func (f *file) dirty() bool {
	return f.pending != nil || f.pendingTouched || f.pendingRecord != nil
}

// abort drops the uncommitted changes.
func (f *file) abort() {
	f.pending = nil
	f.pendingTouched = false
	f.pendingValue = 0
	f.pendingDebited = 0
	f.pendingLimitedUse = false
	f.pendingRecord = nil
}

// commit makes the uncommitted changes permanent.
func (f *file) commit() {
	switch f.typ {
	case fileBackup:
		if f.pending != nil {
			f.data = f.pending
		}
	case fileValue:
		if f.pendingTouched {
			f.value = f.pendingValue
			switch {
			case f.pendingDebited > 0:
				f.limitedValue = f.pendingDebited
			case f.pendingLimitedUse:
				f.limitedValue = 0
			}
		}
	case fileLinearRecord, fileCyclicRecord:
		if f.pendingRecord != nil {
			f.records = append(f.records, f.pendingRecord)
			if f.typ == fileCyclicRecord && len(f.records) > f.maxRecords-1 {
				f.records = slices.Delete(f.records, 0, len(f.records)-(f.maxRecords-1))
			}
		}
	}
	f.abort()
}

// currentValue is the value including the open transaction.
func (f *file) currentValue() int32 {
	if f.pendingTouched {
		return f.pendingValue
	}
	return f.value
}

// memory is the EEPROM the file occupies, in 32-byte blocks as on the chip.
func (f *file) memory() int {
	var n int
	switch f.typ {
	case fileStd:
		n = len(f.data)
	case fileBackup:
		n = 2 * len(f.data)
	case fileValue:
		n = 32
	default:
		n = f.recordSize * f.maxRecords
	}
	return roundUp(n, 32)
}

// app is one application: its key settings, keys and files.
type app struct {
	aid   [3]byte
	ks1   byte // key settings
	ks2   byte // number of keys and key type bits
	keys  []cardKey
	files map[byte]*file
	// ISO/IEC 7816-4 naming: iso is set when the application was created
	// with ISO file identifiers (key settings 2 bit 5); isoFID is its DF's
	// file identifier and dfName its DF name (1-16 bytes, may be empty).
	iso    bool
	isoFID uint16
	dfName []byte
}

func (a *app) keyType() keyType {
	switch a.ks2 >> 6 {
	case 1:
		return key3K3DES
	case 2:
		return keyAES
	}
	return keyDES
}

func (a *app) memory() int {
	n := 64 + 32*len(a.keys)
	for _, f := range a.files {
		n += f.memory()
	}
	return n
}

// picc is the whole card content that survives power loss.
type picc struct {
	uid       []byte
	randomUID bool
	// formatDisabled is set by SetConfiguration; FormatPICC is refused.
	formatDisabled bool
	key            cardKey // PICC master key
	ks1            byte
	apps           []*app // in creation order
	// defaultKey is the key (24 bytes, cut to the key type's length) and
	// version new application keys get: SetConfiguration option 01.
	// Empty means all zeros, version 0.
	defaultKey        []byte
	defaultKeyVersion byte
	// ats is the user-defined ATS of SetConfiguration option 02, nil for
	// the factory ATS.
	ats []byte
}

func newPICC(uid []byte) *picc {
	return &picc{uid: slices.Clone(uid), key: newKey(keyDES), ks1: 0x0F}
}

// newAppKey is a new key of type t: the default key of SetConfiguration
// option 01, or zeros.
func (p *picc) newAppKey(t keyType) cardKey {
	k := newKey(t)
	if len(p.defaultKey) > 0 {
		copy(k.value, p.defaultKey)
		k.version = p.defaultKeyVersion
	}
	return k
}

func (p *picc) app(aid [3]byte) *app {
	for _, a := range p.apps {
		if a.aid == aid {
			return a
		}
	}
	return nil
}

func (p *picc) freeMemory() int {
	used := 0
	for _, a := range p.apps {
		used += a.memory()
	}
	if used > totalMemory {
		return 0
	}
	return totalMemory - used
}

// totalMemory is the user memory of an 8 KB DESFire EV2.
const totalMemory = 7936

func roundUp(n, m int) int { return (n + m - 1) / m * m }

func aidOf(b []byte) [3]byte {
	var a [3]byte
	copy(a[:], b)
	return a
}

var zeroAID [3]byte

package vcard

import (
	"math"
	"slices"

	"github.com/loopcard/loopcard/personalize/desfire"
)

// right names one access right nibble of a file.
type right int

const (
	rightRead right = iota
	rightWrite
	rightRW
	rightChange
)

func (f *file) right(r right) byte {
	switch r {
	case rightRead:
		return f.read
	case rightWrite:
		return f.write
	case rightRW:
		return f.readWrite
	}
	return f.change
}

// fileMode is the file's communication mode.
func (f *file) mode() commMode {
	switch f.comm & 0x03 {
	case 0x01:
		return commMAC
	case 0x03:
		return commFull
	}
	return commPlain
}

// access checks that one of the rights grants access. Access through the
// authenticated key uses the file's communication mode; free access (0xE)
// is plain.
func (c *Card) access(f *file, rights ...right) (commMode, byte) {
	if c.auth != nil {
		for _, r := range rights {
			if f.right(r) == c.auth.keyNo {
				return f.mode(), stOK
			}
		}
	}
	for _, r := range rights {
		if f.right(r) == accessFree {
			return commPlain, stOK
		}
	}
	return commPlain, stPermissionDenied
}

// lookup returns file n of the selected application.
func (c *Card) lookup(n byte) (*file, byte) {
	if c.sel == nil {
		return nil, stPermissionDenied
	}
	f, ok := c.sel.files[n]
	if !ok {
		return nil, stFileNotFound
	}
	return f, stOK
}

func fileAccess(types []fileType, rights ...right) func(c *Card, hdr []byte) (commMode, byte) {
	return func(c *Card, hdr []byte) (commMode, byte) {
		if c.sel == nil {
			return commPlain, stPermissionDenied
		}
		f, st := c.lookup(hdr[0])
		if st != stOK {
			return commPlain, st
		}
		if !slices.Contains(types, f.typ) {
			return commPlain, stParameterError
		}
		return c.access(f, rights...)
	}
}

var (
	dataFiles   = []fileType{fileStd, fileBackup}
	valueFiles  = []fileType{fileValue}
	recordFiles = []fileType{fileLinearRecord, fileCyclicRecord}

	readDataMode    = fileAccess(dataFiles, rightRead, rightRW)
	writeDataMode   = fileAccess(dataFiles, rightWrite, rightRW)
	readRecordsMode = fileAccess(recordFiles, rightRead, rightRW)
	writeRecordMode = fileAccess(recordFiles, rightWrite, rightRW)
)

func valueMode(rights ...right) func(c *Card, hdr []byte) (commMode, byte) {
	return fileAccess(valueFiles, rights...)
}

func getValueMode(c *Card, hdr []byte) (commMode, byte) {
	m, st := valueMode(rightRead, rightWrite, rightRW)(c, hdr)
	if st == stPermissionDenied && c.sel.files[hdr[0]].freeGetValue {
		return commPlain, stOK
	}
	return m, st
}

// writeWant gives the wire length of WriteData and WriteRecord data.
func writeWant(mode func(c *Card, hdr []byte) (commMode, byte)) func(c *Card, hdr []byte) (int, byte) {
	return func(c *Card, hdr []byte) (int, byte) {
		m, st := mode(c, hdr)
		if st != stOK {
			return 0, st
		}
		f := c.sel.files[hdr[0]]
		off, n := desfire.Uint24(hdr[1:4]), desfire.Uint24(hdr[4:7])
		size := len(f.data)
		if f.typ == fileLinearRecord || f.typ == fileCyclicRecord {
			size = f.recordSize
		}
		if n == 0 || off+n > size {
			return 0, stOK // refused by the command itself, without waiting for data
		}
		if c.auth == nil {
			return n, stOK
		}
		return c.auth.sess.wireLen(n, m), stOK
	}
}

// canManageFiles reports whether files may be created or deleted.
func (c *Card) canManageFiles() bool {
	return c.sel.ks1&0x04 != 0 || c.masterAuthed()
}

const maxFiles = 32

// newFile parses file number, communication settings and access rights.
func (c *Card) newFile(t fileType, hdr, body []byte, rest int) (*file, []byte, byte) {
	// In an application with ISO file identifiers, data and record files
	// may carry one (2 bytes, LSB first) before the communication settings.
	var fid uint16
	if c.sel.iso && t != fileValue && len(body) == 5+rest {
		fid, body = uint16(body[0])|uint16(body[1])<<8, body[2:]
		if reservedFID(fid) {
			return nil, nil, stParameterError
		}
		for _, o := range c.sel.files {
			if o.isoFID == fid {
				return nil, nil, stDuplicateError
			}
		}
	}
	if len(body) != 3+rest {
		return nil, nil, stLengthError
	}
	if !c.canManageFiles() {
		return nil, nil, stPermissionDenied
	}
	n := hdr[0]
	if n >= maxFiles || body[0]&^0x03 != 0 {
		return nil, nil, stParameterError
	}
	if _, ok := c.sel.files[n]; ok {
		return nil, nil, stDuplicateError
	}
	f := &file{
		typ: t, comm: body[0], isoFID: fid,
		readWrite: body[1] >> 4, change: body[1] & 0x0F,
		read: body[2] >> 4, write: body[2] & 0x0F,
	}
	return f, body[3:], stOK
}

// addFile stores a new file if memory allows.
func (c *Card) addFile(n byte, f *file) byte {
	if f.memory() > c.p.freeMemory() {
		return stOutOfEEPROM
	}
	c.sel.files[n] = f
	c.changed = true
	return stOK
}

func (c *Card) createDataFile(hdr, body []byte) (byte, []byte) {
	t := fileStd
	if c.curCmd == cmdCreateBackupFile {
		t = fileBackup
	}
	f, rest, st := c.newFile(t, hdr, body, 3)
	if st != stOK {
		return st, nil
	}
	size := desfire.Uint24(rest)
	if size == 0 {
		return stParameterError, nil
	}
	f.data = make([]byte, size)
	return c.addFile(hdr[0], f), nil
}

func (c *Card) createValueFile(hdr, body []byte) (byte, []byte) {
	f, rest, st := c.newFile(fileValue, hdr, body, 13)
	if st != stOK {
		return st, nil
	}
	f.lower, f.upper, f.value = getI32(rest[0:4]), getI32(rest[4:8]), getI32(rest[8:12])
	if rest[12]&^0x03 != 0 {
		return stParameterError, nil
	}
	f.limitedEnabled, f.freeGetValue = rest[12]&0x01 != 0, rest[12]&0x02 != 0
	if f.lower > f.upper || f.value < f.lower || f.value > f.upper {
		return stBoundaryError, nil
	}
	return c.addFile(hdr[0], f), nil
}

func (c *Card) createRecordFile(hdr, body []byte) (byte, []byte) {
	t := fileLinearRecord
	if c.curCmd == cmdCreateCyclicRecord {
		t = fileCyclicRecord
	}
	f, rest, st := c.newFile(t, hdr, body, 6)
	if st != stOK {
		return st, nil
	}
	f.recordSize, f.maxRecords = desfire.Uint24(rest[0:3]), desfire.Uint24(rest[3:6])
	if f.recordSize == 0 || f.maxRecords == 0 || (t == fileCyclicRecord && f.maxRecords < 2) {
		return stParameterError, nil
	}
	return c.addFile(hdr[0], f), nil
}

func (c *Card) deleteFile(hdr, body []byte) (byte, []byte) {
	if len(body) != 0 {
		return stLengthError, nil
	}
	if _, st := c.lookup(hdr[0]); st != stOK {
		return st, nil
	}
	if !c.canManageFiles() {
		return stPermissionDenied, nil
	}
	delete(c.sel.files, hdr[0])
	c.changed = true
	return stOK, nil
}

func (c *Card) getFileIDs(_, body []byte) (byte, []byte) {
	if len(body) != 0 {
		return stLengthError, nil
	}
	if c.sel.ks1&0x02 == 0 && !c.masterAuthed() {
		return stPermissionDenied, nil
	}
	ids := make([]byte, 0, len(c.sel.files))
	for n := range c.sel.files {
		ids = append(ids, n)
	}
	slices.Sort(ids)
	return stOK, ids
}

func (c *Card) getFileSettings(hdr, body []byte) (byte, []byte) {
	if len(body) != 0 {
		return stLengthError, nil
	}
	f, st := c.lookup(hdr[0])
	if st != stOK {
		return st, nil
	}
	if c.sel.ks1&0x02 == 0 && !c.masterAuthed() {
		return stPermissionDenied, nil
	}
	out := []byte{byte(f.typ), f.comm, f.readWrite<<4 | f.change, f.read<<4 | f.write}
	switch f.typ {
	case fileStd, fileBackup:
		out = append(out, le24(len(f.data))...)
	case fileValue:
		out = append(out, putI32(f.lower)...)
		out = append(out, putI32(f.upper)...)
		out = append(out, putI32(f.limitedValue)...)
		var flags byte
		if f.limitedEnabled {
			flags |= 0x01
		}
		if f.freeGetValue {
			flags |= 0x02
		}
		out = append(out, flags)
	default:
		out = append(out, le24(f.recordSize)...)
		out = append(out, le24(f.maxRecords)...)
		out = append(out, le24(len(f.records))...)
	}
	return stOK, out
}

func (c *Card) changeFileSettingsMode(hdr []byte) (commMode, byte) {
	f, st := c.lookup(hdr[0])
	if st != stOK {
		return commPlain, st
	}
	switch {
	case f.change == accessFree:
		return commPlain, stOK
	case c.authedWith(f.change):
		return commFull, stOK
	}
	return commPlain, stPermissionDenied
}

func (c *Card) changeFileSettings(hdr, body []byte) (byte, []byte) {
	if len(body) != 3 {
		return stLengthError, nil
	}
	if body[0]&^0x03 != 0 {
		return stParameterError, nil
	}
	f := c.sel.files[hdr[0]]
	f.comm = body[0]
	f.readWrite, f.change = body[1]>>4, body[1]&0x0F
	f.read, f.write = body[2]>>4, body[2]&0x0F
	c.changed = true
	return stOK, nil
}

// ---- data files ----

func (c *Card) readData(hdr, body []byte) (byte, []byte) {
	if len(body) != 0 {
		return stLengthError, nil
	}
	f := c.sel.files[hdr[0]]
	off, n := desfire.Uint24(hdr[1:4]), desfire.Uint24(hdr[4:7])
	if n == 0 {
		n = len(f.data) - off
	}
	if off >= len(f.data) || n <= 0 || off+n > len(f.data) {
		return stBoundaryError, nil
	}
	return stOK, slices.Clone(f.data[off : off+n])
}

func (c *Card) writeData(hdr, body []byte) (byte, []byte) {
	f := c.sel.files[hdr[0]]
	off, n := desfire.Uint24(hdr[1:4]), desfire.Uint24(hdr[4:7])
	if n == 0 || len(body) != n {
		return stLengthError, nil
	}
	if off+n > len(f.data) {
		return stBoundaryError, nil
	}
	if f.typ == fileStd {
		copy(f.data[off:], body)
		c.changed = true
		return stOK, nil
	}
	if f.pending == nil {
		f.pending = slices.Clone(f.data)
	}
	copy(f.pending[off:], body)
	return stOK, nil
}

// ---- value files ----

func (c *Card) getValue(hdr, body []byte) (byte, []byte) {
	if len(body) != 0 {
		return stLengthError, nil
	}
	return stOK, putI32(c.sel.files[hdr[0]].value)
}

// amount parses the 4-byte amount of Credit, Debit and LimitedCredit.
func amount(body []byte) (int64, byte) {
	if len(body) != 4 {
		return 0, stLengthError
	}
	v := getI32(body)
	if v < 0 {
		return 0, stParameterError
	}
	return int64(v), stOK
}

// setPending records a new value if it lies within the limits.
func (f *file) setPending(v int64) byte {
	if v < int64(f.lower) || v > int64(f.upper) || v > math.MaxInt32 || v < math.MinInt32 {
		return stBoundaryError
	}
	f.pendingValue = int32(v)
	f.pendingTouched = true
	return stOK
}

func (c *Card) credit(hdr, body []byte) (byte, []byte) {
	v, st := amount(body)
	if st != stOK {
		return st, nil
	}
	f := c.sel.files[hdr[0]]
	return f.setPending(int64(f.currentValue()) + v), nil
}

func (c *Card) debit(hdr, body []byte) (byte, []byte) {
	v, st := amount(body)
	if st != stOK {
		return st, nil
	}
	f := c.sel.files[hdr[0]]
	if st := f.setPending(int64(f.currentValue()) - v); st != stOK {
		return st, nil
	}
	f.pendingDebited += int32(v)
	return stOK, nil
}

func (c *Card) limitedCredit(hdr, body []byte) (byte, []byte) {
	v, st := amount(body)
	if st != stOK {
		return st, nil
	}
	f := c.sel.files[hdr[0]]
	if !f.limitedEnabled || f.pendingDebited > 0 {
		return stPermissionDenied, nil
	}
	if v > int64(f.limitedValue) {
		return stBoundaryError, nil
	}
	if st := f.setPending(int64(f.currentValue()) + v); st != stOK {
		return st, nil
	}
	f.pendingLimitedUse = true
	return stOK, nil
}

// ---- record files ----

func (c *Card) writeRecord(hdr, body []byte) (byte, []byte) {
	f := c.sel.files[hdr[0]]
	off, n := desfire.Uint24(hdr[1:4]), desfire.Uint24(hdr[4:7])
	if n == 0 || len(body) != n {
		return stLengthError, nil
	}
	if off+n > f.recordSize {
		return stBoundaryError, nil
	}
	if f.pendingRecord == nil {
		if f.typ == fileLinearRecord && len(f.records) >= f.maxRecords {
			return stBoundaryError, nil
		}
		f.pendingRecord = make([]byte, f.recordSize)
	}
	copy(f.pendingRecord[off:], body)
	return stOK, nil
}

func (c *Card) readRecords(hdr, body []byte) (byte, []byte) {
	if len(body) != 0 {
		return stLengthError, nil
	}
	f := c.sel.files[hdr[0]]
	off, cnt := desfire.Uint24(hdr[1:4]), desfire.Uint24(hdr[4:7])
	have := len(f.records)
	if off >= have {
		return stBoundaryError, nil
	}
	if cnt == 0 {
		cnt = have - off
	}
	if off+cnt > have {
		return stBoundaryError, nil
	}
	out := make([]byte, 0, cnt*f.recordSize)
	for _, r := range f.records[have-off-cnt : have-off] {
		out = append(out, r...)
	}
	return stOK, out
}

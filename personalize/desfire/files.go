package desfire

import (
	"encoding/binary"
	"fmt"
)

// FileType is the kind of a file.
type FileType byte

// File types as GetFileSettings reports them.
const (
	FileStandard     FileType = 0x00
	FileBackup       FileType = 0x01
	FileValue        FileType = 0x02
	FileLinearRecord FileType = 0x03
	FileCyclicRecord FileType = 0x04
)

// Access names a key for an access right: a key number 0x0-0xD, AccessFree
// or AccessNever.
type Access byte

// Special access values.
const (
	AccessFree  Access = 0xE
	AccessNever Access = 0xF
)

// AccessRights are the four access conditions of a file.
type AccessRights struct {
	Read, Write, ReadWrite, Change Access
}

func (a AccessRights) bytes() []byte {
	return []byte{byte(a.ReadWrite&0xF)<<4 | byte(a.Change&0xF), byte(a.Read&0xF)<<4 | byte(a.Write&0xF)}
}

func parseAccess(b []byte) AccessRights {
	return AccessRights{Read: Access(b[1] >> 4), Write: Access(b[1] & 0xF), ReadWrite: Access(b[0] >> 4), Change: Access(b[0] & 0xF)}
}

// commByte is the communication settings byte of a file.
func commByte(m CommMode) (byte, error) {
	switch m {
	case CommPlain:
		return 0x00, nil
	case CommMAC:
		return 0x01, nil
	case CommFull:
		return 0x03, nil
	}
	return 0, fmt.Errorf("%w: communication mode %d", ErrMalformed, int(m))
}

func parseComm(b byte) CommMode {
	switch b & 0x03 {
	case 0x00, 0x02:
		return CommPlain
	case 0x01:
		return CommMAC
	}
	return CommFull
}

// FileSettings is the answer to GetFileSettings. Size is set for data
// files; Lower, Upper, LimitedCredit and LimitedCreditEnabled for value
// files; RecordSize, MaxRecords and Records for record files.
type FileSettings struct {
	Type                 FileType
	Comm                 CommMode
	Access               AccessRights
	Size                 int
	Lower, Upper         int32
	LimitedCredit        int32
	LimitedCreditEnabled bool
	RecordSize           int
	MaxRecords           int
	Records              int
}

// ParseFileSettings parses a GetFileSettings answer. Bytes beyond the
// known fields (EV2 additional access rights) are ignored.
func ParseFileSettings(b []byte) (FileSettings, error) {
	var fs FileSettings
	if len(b) < 4 {
		return fs, fmt.Errorf("%w: file settings of %d bytes", ErrMalformed, len(b))
	}
	fs.Type = FileType(b[0])
	fs.Comm = parseComm(b[1])
	fs.Access = parseAccess(b[2:4])
	rest := b[4:]
	need := map[FileType]int{FileStandard: 3, FileBackup: 3, FileValue: 13, FileLinearRecord: 9, FileCyclicRecord: 9}[fs.Type]
	if need == 0 {
		return fs, fmt.Errorf("%w: file type %02X", ErrUnsupported, b[0])
	}
	if len(rest) < need {
		return fs, fmt.Errorf("%w: file settings of type %02X: %d bytes", ErrMalformed, b[0], len(b))
	}
	switch fs.Type {
	case FileStandard, FileBackup:
		fs.Size = Uint24(rest)
	case FileValue:
		fs.Lower = int32(binary.LittleEndian.Uint32(rest[0:]))
		fs.Upper = int32(binary.LittleEndian.Uint32(rest[4:]))
		fs.LimitedCredit = int32(binary.LittleEndian.Uint32(rest[8:]))
		fs.LimitedCreditEnabled = rest[12]&0x01 != 0
	default:
		fs.RecordSize, fs.MaxRecords, fs.Records = Uint24(rest[0:]), Uint24(rest[3:]), Uint24(rest[6:])
	}
	return fs, nil
}

// GetFileIDs lists the files of the selected application.
func (c *Card) GetFileIDs() ([]byte, error) {
	return c.runAuto(CmdGetFileIDs, nil, nil, -1)
}

// GetFileSettings returns the settings of file fileNo.
func (c *Card) GetFileSettings(fileNo byte) (FileSettings, error) {
	b, err := c.runAuto(CmdGetFileSettings, []byte{fileNo}, nil, -1)
	if err != nil {
		return FileSettings{}, err
	}
	return ParseFileSettings(b)
}

func fileHeader(fileNo byte, comm CommMode, ar AccessRights) ([]byte, error) {
	cb, err := commByte(comm)
	if err != nil {
		return nil, err
	}
	return append([]byte{fileNo, cb}, ar.bytes()...), nil
}

func check24(name string, v int) error {
	if v < 0 || v > 0xFFFFFF {
		return fmt.Errorf("%w: %s %d out of range", ErrMalformed, name, v)
	}
	return nil
}

// CreateStdDataFile creates a standard data file of size bytes.
func (c *Card) CreateStdDataFile(fileNo byte, comm CommMode, ar AccessRights, size int) error {
	return c.createDataFile(CmdCreateStdDataFile, fileNo, comm, ar, size)
}

// CreateBackupDataFile creates a backup data file (written on CommitTransaction).
func (c *Card) CreateBackupDataFile(fileNo byte, comm CommMode, ar AccessRights, size int) error {
	return c.createDataFile(CmdCreateBackupDataFile, fileNo, comm, ar, size)
}

func (c *Card) createDataFile(cmd, fileNo byte, comm CommMode, ar AccessRights, size int) error {
	return c.createDataFileISO(cmd, fileNo, 0, comm, ar, size)
}

// CreateStdDataFileISO creates a standard data file with ISO/IEC 7816-4
// file identifier fid, in an application created with CreateApplicationISO;
// ISO SELECT, READ BINARY and UPDATE BINARY then reach it.
func (c *Card) CreateStdDataFileISO(fileNo byte, fid uint16, comm CommMode, ar AccessRights, size int) error {
	if fid == 0 {
		return fmt.Errorf("%w: ISO file identifier 0000", ErrMalformed)
	}
	return c.createDataFileISO(CmdCreateStdDataFile, fileNo, fid, comm, ar, size)
}

// CreateLinearRecordFileISO creates a linear record file with ISO file
// identifier fid; READ RECORD then reaches it.
func (c *Card) CreateLinearRecordFileISO(fileNo byte, fid uint16, comm CommMode, ar AccessRights, recordSize, maxRecords int) error {
	if fid == 0 {
		return fmt.Errorf("%w: ISO file identifier 0000", ErrMalformed)
	}
	return c.createRecordFileISO(CmdCreateLinearRecordFile, fileNo, fid, comm, ar, recordSize, maxRecords)
}

// withFID puts an ISO file identifier (LSB first) after the file number of
// a create-file header; fid 0 means none.
func withFID(h []byte, fid uint16) []byte {
	if fid == 0 {
		return h
	}
	return append([]byte{h[0], byte(fid), byte(fid >> 8)}, h[1:]...)
}

func (c *Card) createDataFileISO(cmd, fileNo byte, fid uint16, comm CommMode, ar AccessRights, size int) error {
	if err := check24("size", size); err != nil {
		return err
	}
	h, err := fileHeader(fileNo, comm, ar)
	if err != nil {
		return err
	}
	_, err = c.runAuto(cmd, append(withFID(h, fid), le24(size)...), nil, -1)
	return err
}

// CreateValueFile creates a value file with limits, initial value and
// whether LimitedCredit is allowed.
func (c *Card) CreateValueFile(fileNo byte, comm CommMode, ar AccessRights, lower, upper, value int32, limitedCredit bool) error {
	h, err := fileHeader(fileNo, comm, ar)
	if err != nil {
		return err
	}
	h = binary.LittleEndian.AppendUint32(h, uint32(lower))
	h = binary.LittleEndian.AppendUint32(h, uint32(upper))
	h = binary.LittleEndian.AppendUint32(h, uint32(value))
	lc := byte(0)
	if limitedCredit {
		lc = 1
	}
	_, err = c.runAuto(CmdCreateValueFile, append(h, lc), nil, -1)
	return err
}

// CreateCyclicRecordFile creates a cyclic record file.
func (c *Card) CreateCyclicRecordFile(fileNo byte, comm CommMode, ar AccessRights, recordSize, maxRecords int) error {
	return c.createRecordFile(CmdCreateCyclicRecordFile, fileNo, comm, ar, recordSize, maxRecords)
}

// CreateLinearRecordFile creates a linear record file.
func (c *Card) CreateLinearRecordFile(fileNo byte, comm CommMode, ar AccessRights, recordSize, maxRecords int) error {
	return c.createRecordFile(CmdCreateLinearRecordFile, fileNo, comm, ar, recordSize, maxRecords)
}

func (c *Card) createRecordFile(cmd, fileNo byte, comm CommMode, ar AccessRights, recordSize, maxRecords int) error {
	return c.createRecordFileISO(cmd, fileNo, 0, comm, ar, recordSize, maxRecords)
}

func (c *Card) createRecordFileISO(cmd, fileNo byte, fid uint16, comm CommMode, ar AccessRights, recordSize, maxRecords int) error {
	if err := check24("record size", recordSize); err != nil {
		return err
	}
	if err := check24("records", maxRecords); err != nil {
		return err
	}
	h, err := fileHeader(fileNo, comm, ar)
	if err != nil {
		return err
	}
	h = append(append(withFID(h, fid), le24(recordSize)...), le24(maxRecords)...)
	_, err = c.runAuto(cmd, h, nil, -1)
	return err
}

// DeleteFile deletes a file of the selected application.
func (c *Card) DeleteFile(fileNo byte) error {
	_, err := c.runAuto(CmdDeleteFile, []byte{fileNo}, nil, -1)
	return err
}

func rwHeader(fileNo byte, offset, length int) ([]byte, error) {
	if err := check24("offset", offset); err != nil {
		return nil, err
	}
	if err := check24("length", length); err != nil {
		return nil, err
	}
	return append(append([]byte{fileNo}, le24(offset)...), le24(length)...), nil
}

// ReadData reads length bytes at offset of a data file whose communication
// mode is comm (length 0: to the end of the file; not allowed in an EV1
// session for a full-mode file, whose padding needs the length).
func (c *Card) ReadData(fileNo byte, offset, length int, comm CommMode) ([]byte, error) {
	h, err := rwHeader(fileNo, offset, length)
	if err != nil {
		return nil, err
	}
	return c.read(CmdReadData, h, comm, length)
}

// ReadRecords reads count records (0: all) from record offset of a record
// file of recordSize bytes per record.
func (c *Card) ReadRecords(fileNo byte, offset, count, recordSize int, comm CommMode) ([]byte, error) {
	h, err := rwHeader(fileNo, offset, count)
	if err != nil {
		return nil, err
	}
	b, err := c.read(CmdReadRecords, h, comm, count*recordSize)
	if err != nil {
		return nil, err
	}
	if recordSize > 0 && len(b)%recordSize != 0 {
		return nil, fmt.Errorf("%w: %d bytes of records of %d bytes", ErrMalformed, len(b), recordSize)
	}
	return b, nil
}

func (c *Card) read(cmd byte, h []byte, comm CommMode, want int) ([]byte, error) {
	mode := c.fileMode(cmd, comm)
	respLen := -1
	if want > 0 {
		respLen = want
	} else if (c.scheme == AuthEV1 || c.scheme == AuthLegacy) && mode == CommFull {
		return nil, fmt.Errorf("%w: command 0x%02X: EV1 full mode needs an explicit length", ErrUnsupported, cmd)
	}
	b, err := c.run(cmd, h, nil, mode, respLen)
	if err != nil {
		return nil, err
	}
	if want > 0 && len(b) != want {
		return nil, fmt.Errorf("%w: command 0x%02X: %d bytes, want %d", ErrMalformed, cmd, len(b), want)
	}
	return b, nil
}

// fileMode is the mode of a file command in the current session: files are
// read and written in plain without authentication.
func (c *Card) fileMode(cmd byte, comm CommMode) CommMode {
	return CommModeIn(c.scheme, cmd, comm)
}

// WriteData writes data at offset of a data file with communication mode comm.
func (c *Card) WriteData(fileNo byte, offset int, data []byte, comm CommMode) error {
	return c.write(CmdWriteData, fileNo, offset, data, comm)
}

// WriteRecord writes data at offset into the current record of a record file.
func (c *Card) WriteRecord(fileNo byte, offset int, data []byte, comm CommMode) error {
	return c.write(CmdWriteRecord, fileNo, offset, data, comm)
}

func (c *Card) write(cmd, fileNo byte, offset int, data []byte, comm CommMode) error {
	if len(data) == 0 {
		return fmt.Errorf("%w: nothing to write", ErrMalformed)
	}
	h, err := rwHeader(fileNo, offset, len(data))
	if err != nil {
		return err
	}
	_, err = c.run(cmd, h, data, c.fileMode(cmd, comm), -1)
	return err
}

// GetValue returns the value of a value file.
func (c *Card) GetValue(fileNo byte, comm CommMode) (int32, error) {
	b, err := c.run(CmdGetValue, []byte{fileNo}, nil, c.fileMode(CmdGetValue, comm), 4)
	if err != nil {
		return 0, err
	}
	if err := wantLen(CmdGetValue, b, 4); err != nil {
		return 0, err
	}
	return int32(binary.LittleEndian.Uint32(b)), nil
}

// Credit adds amount (> 0) to a value file; effective on CommitTransaction.
func (c *Card) Credit(fileNo byte, amount int32, comm CommMode) error {
	return c.value(CmdCredit, fileNo, amount, comm)
}

// Debit subtracts amount (> 0) from a value file; effective on CommitTransaction.
func (c *Card) Debit(fileNo byte, amount int32, comm CommMode) error {
	return c.value(CmdDebit, fileNo, amount, comm)
}

// LimitedCredit adds at most the amount of the last debits without master
// key authentication.
func (c *Card) LimitedCredit(fileNo byte, amount int32, comm CommMode) error {
	return c.value(CmdLimitedCredit, fileNo, amount, comm)
}

func (c *Card) value(cmd, fileNo byte, amount int32, comm CommMode) error {
	if amount <= 0 {
		return fmt.Errorf("%w: amount must be positive", ErrMalformed)
	}
	data := binary.LittleEndian.AppendUint32(nil, uint32(amount))
	_, err := c.run(cmd, []byte{fileNo}, data, c.fileMode(cmd, comm), -1)
	return err
}

// CommitTransaction makes the pending changes to backup, value and record
// files of the selected application durable, all together.
func (c *Card) CommitTransaction() error {
	_, err := c.runAuto(CmdCommitTransaction, nil, nil, -1)
	return err
}

// AbortTransaction drops the pending changes.
func (c *Card) AbortTransaction() error {
	_, err := c.runAuto(CmdAbortTransaction, nil, nil, -1)
	return err
}

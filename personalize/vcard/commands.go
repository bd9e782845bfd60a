package vcard

import (
	"encoding/binary"
	"slices"

	"github.com/loopcard/loopcard/personalize/desfire"
)

// commMode is the protection of a command's data: plain, MACed or fully
// enciphered. It applies only while authenticated.
type commMode = desfire.CommMode

const (
	commPlain = desfire.CommPlain
	commMAC   = desfire.CommMAC
	commFull  = desfire.CommFull
)

// level says where a command may run.
type level byte

const (
	levelAny level = iota
	levelPICC
	levelApp
)

// spec describes one native command.
type spec struct {
	hdr   int      // bytes of plain command header before the protected data
	level level    // PICC, application or both
	fixed commMode // mode when mode is nil
	// mode decides the communication mode (and access) from the header.
	mode func(c *Card, hdr []byte) (commMode, byte)
	// want is the length of the protected data on the wire, for commands
	// whose data may come in several frames.
	want func(c *Card, hdr []byte) (int, byte)
	run  func(c *Card, hdr, body []byte) (byte, []byte)
}

// commands is the native command set by command code.
var commands map[byte]*spec

func init() {
	commands = map[byte]*spec{
		cmdGetVersion:         {fixed: commMAC, run: (*Card).getVersion},
		cmdGetCardUID:         {fixed: commFull, run: (*Card).getCardUID},
		cmdGetApplicationIDs:  {level: levelPICC, fixed: commMAC, run: (*Card).getApplicationIDs},
		cmdSelectApplication:  {hdr: 3, fixed: commPlain, run: (*Card).selectApplication},
		cmdCreateApplication:  {level: levelPICC, fixed: commMAC, run: (*Card).createApplication},
		cmdDeleteApplication:  {hdr: 3, fixed: commMAC, run: (*Card).deleteApplication},
		cmdFormatPICC:         {level: levelPICC, fixed: commMAC, run: (*Card).formatPICC},
		cmdChangeKey:          {hdr: 1, fixed: commFull, run: (*Card).changeKey},
		cmdChangeKeySettings:  {fixed: commFull, run: (*Card).changeKeySettings},
		cmdGetKeySettings:     {fixed: commMAC, run: (*Card).getKeySettings},
		cmdGetKeyVersion:      {hdr: 1, fixed: commMAC, run: (*Card).getKeyVersion},
		cmdSetConfiguration:   {hdr: 1, level: levelPICC, fixed: commFull, run: (*Card).setConfiguration},
		cmdCreateStdDataFile:  {hdr: 1, level: levelApp, fixed: commMAC, run: (*Card).createDataFile},
		cmdCreateBackupFile:   {hdr: 1, level: levelApp, fixed: commMAC, run: (*Card).createDataFile},
		cmdCreateValueFile:    {hdr: 1, level: levelApp, fixed: commMAC, run: (*Card).createValueFile},
		cmdCreateLinearRecord: {hdr: 1, level: levelApp, fixed: commMAC, run: (*Card).createRecordFile},
		cmdCreateCyclicRecord: {hdr: 1, level: levelApp, fixed: commMAC, run: (*Card).createRecordFile},
		cmdDeleteFile:         {hdr: 1, level: levelApp, fixed: commMAC, run: (*Card).deleteFile},
		cmdGetFileIDs:         {level: levelApp, fixed: commMAC, run: (*Card).getFileIDs},
		cmdGetFileSettings:    {hdr: 1, level: levelApp, fixed: commMAC, run: (*Card).getFileSettings},
		cmdChangeFileSettings: {hdr: 1, level: levelApp, mode: (*Card).changeFileSettingsMode, run: (*Card).changeFileSettings},
		cmdReadData:           {hdr: 7, level: levelApp, mode: readDataMode, run: (*Card).readData},
		cmdWriteData:          {hdr: 7, level: levelApp, mode: writeDataMode, want: writeWant(writeDataMode), run: (*Card).writeData},
		cmdGetValue:           {hdr: 1, level: levelApp, mode: getValueMode, run: (*Card).getValue},
		cmdCredit:             {hdr: 1, level: levelApp, mode: valueMode(rightRW), run: (*Card).credit},
		cmdDebit:              {hdr: 1, level: levelApp, mode: valueMode(rightRead, rightWrite, rightRW), run: (*Card).debit},
		cmdLimitedCredit:      {hdr: 1, level: levelApp, mode: valueMode(rightWrite, rightRW), run: (*Card).limitedCredit},
		cmdWriteRecord:        {hdr: 7, level: levelApp, mode: writeRecordMode, want: writeWant(writeRecordMode), run: (*Card).writeRecord},
		cmdReadRecords:        {hdr: 7, level: levelApp, mode: readRecordsMode, run: (*Card).readRecords},
		cmdCommitTransaction:  {level: levelApp, fixed: commMAC, run: (*Card).commitTransaction},
		cmdAbortTransaction:   {level: levelApp, fixed: commMAC, run: (*Card).abortTransactionCmd},
		cmdGetFreeMemory:      {fixed: commMAC, run: (*Card).getFreeMemory},
	}
}

// execute checks level and access, removes the secure messaging, runs the
// command and protects its response.
func (c *Card) execute(cmd byte, s *spec, hdr, body []byte) (byte, []byte) {
	switch {
	case s.level == levelPICC && c.sel != nil, s.level == levelApp && c.sel == nil:
		return stPermissionDenied, nil
	}
	mode := s.fixed
	if s.mode != nil {
		m, st := s.mode(c, hdr)
		if st != stOK {
			return st, nil
		}
		mode = m
	}
	if _, ok := sessionOf[legacySession](c); ok && s.mode == nil {
		// Legacy (D40) secure messaging: no MAC on management commands,
		// keys and configuration enciphered.
		mode = desfire.CommModeIn(desfire.AuthLegacy, cmd, mode)
	}
	if mode != commPlain && c.auth == nil && s.mode != nil {
		// File access with MAC or full communication needs authentication.
		return stPermissionDenied, nil
	}
	if c.auth != nil {
		uh, ub := hdr, body
		if _, ok := sessionOf[ev1Session](c); ok && s.mode == nil && mode == commMAC {
			// EV1 sends no CMAC with the management commands: their CMAC
			// only moves the IV on.
			uh, ub = slices.Concat(hdr, body), nil
		}
		plain, err := c.auth.sess.unwrap(cmd, uh, ub, mode)
		if len(uh) > len(hdr) {
			plain = body
		}
		if err != nil {
			c.log.Debug("vcard: secure messaging", "cmd", cmd, "err", err)
			return stIntegrityError, nil
		}
		body = plain
	}
	sess := c.auth
	c.curCmd = cmd
	status, out := s.run(c, hdr, body)
	if !desfire.IsSuccess(status) || sess == nil || c.auth != sess {
		return status, out
	}
	wrapped, err := sess.sess.wrap(status, out, mode)
	if err != nil {
		c.log.Debug("vcard: secure messaging", "cmd", cmd, "err", err)
		return stIntegrityError, nil
	}
	return status, wrapped
}

// authedWith reports whether the current authentication is with key n.
func (c *Card) authedWith(n byte) bool { return c.auth != nil && c.auth.keyNo == n }

// masterAuthed reports whether key 0 of the current level is authenticated.
func (c *Card) masterAuthed() bool { return c.authedWith(0) }

// ---- PICC level ----

func (c *Card) getVersion(_, _ []byte) (byte, []byte) {
	hw := []byte{0x04, 0x01, 0x01, 0x12, 0x00, 0x1A, 0x05}
	sw := []byte{0x04, 0x01, 0x01, 0x12, 0x00, 0x1A, 0x05}
	out := append(hw, sw...)
	uid := make([]byte, 7)
	if !c.p.randomUID {
		copy(uid, c.p.uid)
	}
	out = append(out, uid...)
	out = append(out, 0xBA, 0x7C, 0x00, 0x00, 0x00, 0x26, 0x26) // batch, week 38, year 26
	c.splits = []int{7, 7}
	return stOK, out
}

func (c *Card) getCardUID(_, _ []byte) (byte, []byte) {
	if c.auth == nil {
		return stPermissionDenied, nil
	}
	return stOK, slices.Clone(c.p.uid)
}

func (c *Card) getApplicationIDs(_, _ []byte) (byte, []byte) {
	if c.p.ks1&0x02 == 0 && !c.masterAuthed() {
		return stPermissionDenied, nil
	}
	out := make([]byte, 0, 3*len(c.p.apps))
	for _, a := range c.p.apps {
		out = append(out, a.aid[:]...)
	}
	return stOK, out
}

func (c *Card) selectApplication(hdr, body []byte) (byte, []byte) {
	if len(body) != 0 {
		return stLengthError, nil
	}
	aid := aidOf(hdr)
	var a *app
	if aid != zeroAID {
		if a = c.p.app(aid); a == nil {
			return stAppNotFound, nil
		}
	}
	c.selectDF(a)
	return stOK, nil
}

const maxApps = 28

func (c *Card) createApplication(_, body []byte) (byte, []byte) {
	if len(body) < 5 {
		return stLengthError, nil
	}
	if c.p.ks1&0x04 == 0 && !c.masterAuthed() {
		return stPermissionDenied, nil
	}
	aid := aidOf(body)
	ks1, ks2 := body[3], body[4]
	n := int(ks2 & 0x0F)
	if aid == zeroAID || n < 1 || n > 14 || ks2>>6 == 3 {
		return stParameterError, nil
	}
	// With key settings 2 bit 5 the application has an ISO/IEC 7816-4 DF:
	// a 2-byte file identifier (LSB first), then an optional DF name
	// of up to 16 bytes.
	var isoFID uint16
	var dfName []byte
	switch rest := body[5:]; {
	case ks2&0x20 == 0 && len(rest) != 0, ks2&0x20 != 0 && (len(rest) < 2 || len(rest) > 18):
		return stLengthError, nil
	case ks2&0x20 != 0:
		isoFID, dfName = uint16(rest[0])|uint16(rest[1])<<8, slices.Clone(rest[2:])
		if reservedFID(isoFID) {
			return stParameterError, nil
		}
	}
	if c.p.app(aid) != nil {
		return stDuplicateError, nil
	}
	for _, o := range c.p.apps {
		if o.iso && ks2&0x20 != 0 && (o.isoFID == isoFID || (len(dfName) > 0 && slices.Equal(o.dfName, dfName))) {
			return stDuplicateError, nil
		}
	}
	if len(c.p.apps) >= maxApps {
		return stCountError, nil
	}
	a := &app{aid: aid, ks1: ks1, ks2: ks2 & 0xCF, files: map[byte]*file{}, iso: ks2&0x20 != 0, isoFID: isoFID, dfName: dfName}
	for range n {
		a.keys = append(a.keys, c.p.newAppKey(a.keyType()))
	}
	if a.memory() > c.p.freeMemory() {
		return stOutOfEEPROM, nil
	}
	c.p.apps = append(c.p.apps, a)
	c.changed = true
	return stOK, nil
}

func (c *Card) deleteApplication(hdr, body []byte) (byte, []byte) {
	if len(body) != 0 {
		return stLengthError, nil
	}
	aid := aidOf(hdr)
	a := c.p.app(aid)
	if a == nil {
		return stAppNotFound, nil
	}
	if !c.masterAuthed() || (c.sel != nil && c.sel != a) {
		return stPermissionDenied, nil
	}
	c.p.apps = slices.DeleteFunc(c.p.apps, func(x *app) bool { return x == a })
	if c.sel == a {
		c.sel = nil
		c.auth = nil
	}
	c.changed = true
	return stOK, nil
}

func (c *Card) formatPICC(_, body []byte) (byte, []byte) {
	if len(body) != 0 {
		return stLengthError, nil
	}
	if !c.masterAuthed() || c.p.formatDisabled {
		return stPermissionDenied, nil
	}
	c.p.apps = nil
	c.changed = true
	return stOK, nil
}

func (c *Card) getKeySettings(_, body []byte) (byte, []byte) {
	if len(body) != 0 {
		return stLengthError, nil
	}
	if c.sel == nil {
		if c.p.ks1&0x02 == 0 && !c.masterAuthed() {
			return stPermissionDenied, nil
		}
		return stOK, []byte{c.p.ks1, 0x01 | byte(c.p.key.typ)<<6}
	}
	if c.sel.ks1&0x02 == 0 && !c.masterAuthed() {
		return stPermissionDenied, nil
	}
	return stOK, []byte{c.sel.ks1, c.sel.ks2 | byte(len(c.sel.keys))}
}

func (c *Card) getKeyVersion(hdr, body []byte) (byte, []byte) {
	if len(body) != 0 {
		return stLengthError, nil
	}
	k, st := c.keySlot(hdr[0])
	if st != stOK {
		return st, nil
	}
	return stOK, []byte{k.version}
}

// keySlot returns the key numbered n at the current level.
func (c *Card) keySlot(n byte) (*cardKey, byte) {
	if c.sel == nil {
		if n&0x3F != 0 {
			return nil, stNoSuchKey
		}
		return &c.p.key, stOK
	}
	n &= 0x3F
	if int(n) >= len(c.sel.keys) {
		return nil, stNoSuchKey
	}
	return &c.sel.keys[n], stOK
}

func (c *Card) changeKeySettings(_, body []byte) (byte, []byte) {
	if c.auth == nil || !c.masterAuthed() {
		return stPermissionDenied, nil
	}
	if len(body) != 1 {
		return stLengthError, nil
	}
	if c.sel == nil {
		if c.p.ks1&0x08 == 0 {
			return stPermissionDenied, nil
		}
		c.p.ks1 = body[0] & 0x0F
	} else {
		if c.sel.ks1&0x08 == 0 {
			return stPermissionDenied, nil
		}
		c.sel.ks1 = body[0]
	}
	c.changed = true
	return stOK, nil
}

// setConfiguration is SetConfiguration (MF3D(H)x3 data sheet, section
// "SetConfiguration"): option 00 sets the PICC configuration byte (bit 0
// disables FormatPICC, bit 1 turns random UID on; both for good), option 01
// the key and version that new applications' keys get, option 02 the ATS the
// card answers after the next activation (TL first, at most MaxATS bytes).
func (c *Card) setConfiguration(hdr, body []byte) (byte, []byte) {
	if c.auth == nil || !c.masterAuthed() {
		return stPermissionDenied, nil
	}
	switch hdr[0] {
	case desfire.ConfigPICC:
		if len(body) != 1 {
			return stLengthError, nil
		}
		if body[0]&^0x03 != 0 {
			return stParameterError, nil
		}
		c.p.formatDisabled = c.p.formatDisabled || body[0]&0x01 != 0
		c.p.randomUID = c.p.randomUID || body[0]&0x02 != 0
	case desfire.ConfigDefault:
		if len(body) != 25 {
			return stLengthError, nil
		}
		c.p.defaultKey = slices.Clone(body[:24])
		c.p.defaultKeyVersion = body[24]
	case desfire.ConfigATS:
		if len(body) == 0 || int(body[0]) != len(body) || len(body) > desfire.MaxATS {
			return stLengthError, nil
		}
		if _, ok := historicalBytes(body); !ok {
			return stParameterError, nil
		}
		c.p.ats = slices.Clone(body)
	default:
		return stParameterError, nil
	}
	c.changed = true
	return stOK, nil
}

// historicalBytes returns the historical bytes of an ATS: TL, T0, the
// interface bytes TA, TB, TC that T0 announces, then the historical bytes
// (ISO/IEC 14443-4, 5.2).
func historicalBytes(ats []byte) ([]byte, bool) {
	if len(ats) < 2 {
		return nil, len(ats) == 1
	}
	n := 2
	for bit := byte(0x10); bit <= 0x40; bit <<= 1 {
		if ats[1]&bit != 0 {
			n++
		}
	}
	if ats[1]&0x80 != 0 || n > len(ats) {
		return nil, false
	}
	return ats[n:], true
}

func (c *Card) getFreeMemory(_, body []byte) (byte, []byte) {
	if len(body) != 0 {
		return stLengthError, nil
	}
	return stOK, le24(c.p.freeMemory())
}

// ---- transactions ----

// abortTransaction drops the pending changes of the selected application.
func (c *Card) abortTransaction() {
	if c.sel == nil {
		return
	}
	for _, f := range c.sel.files {
		f.abort()
	}
}

func (c *Card) commitTransaction(_, body []byte) (byte, []byte) {
	if len(body) > 1 {
		return stLengthError, nil
	}
	if len(body) == 1 && body[0] != 0 {
		// ReturnTMC/TMV needs a transaction MAC file, which is not modelled.
		return stParameterError, nil
	}
	status := byte(stNoChanges)
	for _, f := range c.sel.files {
		if f.dirty() {
			f.commit()
			c.changed = true
			status = stOK
		}
	}
	return status, nil
}

func (c *Card) abortTransactionCmd(_, body []byte) (byte, []byte) {
	if len(body) != 0 {
		return stLengthError, nil
	}
	for _, f := range c.sel.files {
		if f.dirty() {
			c.abortTransaction()
			return stOK, nil
		}
	}
	return stNoChanges, nil
}

func le24(n int) []byte { return []byte{byte(n), byte(n >> 8), byte(n >> 16)} }

func getI32(b []byte) int32 { return int32(binary.LittleEndian.Uint32(b)) }

func putI32(v int32) []byte { return binary.LittleEndian.AppendUint32(nil, uint32(v)) }

// sessionOf returns the current session if it is of type T.
func sessionOf[T session](c *Card) (T, bool) {
	var zero T
	if c.auth == nil {
		return zero, false
	}
	s, ok := c.auth.sess.(T)
	return s, ok
}

package desfire

// Native command codes (INS of the wrapped APDU).
const (
	CmdAuthenticateLegacy      byte = 0x0A
	CmdAuthenticateISO         byte = 0x1A
	CmdAuthenticateAES         byte = 0xAA
	CmdAuthenticateEV2First    byte = 0x71
	CmdAuthenticateEV2NonFirst byte = 0x77
	CmdChangeKeySettings       byte = 0x54
	CmdSetConfiguration        byte = 0x5C
	CmdChangeKey               byte = 0xC4
	CmdGetKeyVersion           byte = 0x64
	CmdCreateApplication       byte = 0xCA
	CmdDeleteApplication       byte = 0xDA
	CmdGetApplicationIDs       byte = 0x6A
	CmdGetFreeMemory           byte = 0x6E
	CmdGetKeySettings          byte = 0x45
	CmdSelectApplication       byte = 0x5A
	CmdFormatPICC              byte = 0xFC
	CmdGetVersion              byte = 0x60
	CmdGetCardUID              byte = 0x51
	CmdGetFileIDs              byte = 0x6F
	CmdGetFileSettings         byte = 0xF5
	CmdChangeFileSettings      byte = 0x5F
	CmdCreateStdDataFile       byte = 0xCD
	CmdCreateBackupDataFile    byte = 0xCB
	CmdCreateValueFile         byte = 0xCC
	CmdCreateLinearRecordFile  byte = 0xC1
	CmdCreateCyclicRecordFile  byte = 0xC0
	CmdDeleteFile              byte = 0xDF
	CmdReadData                byte = 0xBD
	CmdWriteData               byte = 0x3D
	CmdGetValue                byte = 0x6C
	CmdCredit                  byte = 0x0C
	CmdDebit                   byte = 0xDC
	CmdLimitedCredit           byte = 0x1C
	CmdWriteRecord             byte = 0x3B
	CmdReadRecords             byte = 0xBB
	CmdClearRecordFile         byte = 0xEB
	CmdCommitTransaction       byte = 0xC7
	CmdAbortTransaction        byte = 0xA7
	CmdAdditionalFrame         byte = 0xAF
)

// CommMode is the protection of one command/response pair.
type CommMode int

// Communication modes. In CommPlain data travel in clear, in CommMAC they
// carry a MAC, in CommFull they are encrypted and MACed (EV2) or encrypted
// with a CRC (EV1).
const (
	CommPlain CommMode = iota
	CommMAC
	CommFull
)

func (m CommMode) String() string {
	switch m {
	case CommPlain:
		return "plain"
	case CommMAC:
		return "mac"
	case CommFull:
		return "full"
	}
	return "invalid"
}

// CommModeFor is the communication mode of cmd in an EV1 or EV2 session:
// CommModeIn(AuthEV2, cmd, fileMode).
func CommModeFor(cmd byte, fileMode CommMode) CommMode {
	return CommModeIn(AuthEV2, cmd, fileMode)
}

// CommModeIn is the communication mode of cmd in a session of the given
// kind, as NXP's MF3D(H)x3 data sheet tables it per command (section 10,
// "Communication mode" of each command) and the EV1 data sheet and AN12343
// for the legacy (D40) and EV1 sessions. fileMode is the file's mode from its
// settings, used for the data and value commands. A card implementation
// applies the same table.
//
//   - No authentication: everything is plain.
//   - Legacy (AuthenticateLegacy 0x0A, DES and 2K3DES keys): file data and
//     values in the file's mode (MAC: a 4-byte DES CBC MAC; full: data and
//     CRC16, zero padded, in send mode); ChangeKey, ChangeKeySettings,
//     SetConfiguration, ChangeFileSettings and GetCardUID's answer
//     enciphered (data and CRC16); every other command plain, with no MAC.
//   - EV1 (0x1A with DES, 2K3DES or 3K3DES keys, 0xAA) and EV2: file data and
//     values in the file's mode; GetCardUID, ChangeKeySettings,
//     SetConfiguration, ChangeFileSettings and ChangeKey full; everything
//     else MAC (EV1: a CMAC over command and answer; the command's CMAC is
//     sent only when it has data after the header).
//
// Authentication commands and SelectApplication are never wrapped.
// ChangeFileSettings is plain when the file's Change right is free, which
// the caller knows from the file's settings.
//
// Where the clear header ends (what UnwrapCommand gets as header): ReadData,
// WriteData, ReadRecords, WriteRecord 7 bytes; GetValue, Credit, Debit,
// LimitedCredit, ChangeKey, SetConfiguration, GetKeyVersion,
// GetFileSettings, ChangeFileSettings, DeleteFile 1 byte; ChangeKeySettings
// 0 bytes (its one byte is data); every other command has all its
// parameters in the header. [CommandDataLen] gives the length of the
// protected data.
func CommModeIn(scheme AuthScheme, cmd byte, fileMode CommMode) CommMode {
	switch cmd {
	case CmdReadData, CmdWriteData, CmdGetValue, CmdCredit, CmdDebit,
		CmdLimitedCredit, CmdWriteRecord, CmdReadRecords:
		if scheme == AuthNone {
			return CommPlain
		}
		return fileMode
	case CmdGetCardUID, CmdChangeKeySettings, CmdSetConfiguration, CmdChangeKey, CmdChangeFileSettings:
		if scheme == AuthNone {
			return CommPlain
		}
		return CommFull
	case CmdSelectApplication, CmdAuthenticateLegacy, CmdAuthenticateISO, CmdAuthenticateAES,
		CmdAuthenticateEV2First, CmdAuthenticateEV2NonFirst, CmdAdditionalFrame:
		return CommPlain
	}
	if scheme == AuthEV1 || scheme == AuthEV2 {
		return CommMAC
	}
	return CommPlain
}

// CommandDataLen is the length of the plaintext data of a full-mode command
// when the command tells it, else -1: WriteData and WriteRecord from their
// header, Credit, Debit and LimitedCredit 4, ChangeKeySettings 1,
// ChangeFileSettings 3, SetConfiguration by option (00: 1, 01: 24-byte key
// and version, 02: the ATS, whose first byte TL is its length). plain is
// the deciphered data, for the ATS length.
func CommandDataLen(cmd byte, header, plain []byte) int {
	switch cmd {
	case CmdWriteData, CmdWriteRecord:
		if len(header) == 7 {
			return int(header[4]) | int(header[5])<<8 | int(header[6])<<16
		}
	case CmdCredit, CmdDebit, CmdLimitedCredit:
		return 4
	case CmdChangeKeySettings:
		return 1
	case CmdChangeFileSettings:
		return 3
	case CmdSetConfiguration:
		if len(header) != 1 {
			return -1
		}
		switch header[0] {
		case ConfigPICC:
			return 1
		case ConfigDefault:
			return 25
		case ConfigATS:
			if len(plain) > 0 && plain[0] > 0 && int(plain[0]) <= MaxATS {
				return int(plain[0])
			}
		}
	}
	return -1
}

// commandPad is the first padding byte after the CRC of a full-mode
// command in legacy and EV1 sessions: 0x80 (ISO/IEC 9797-1 method 2) for
// SetConfiguration's ATS, as NXP specifies it and libfreefare sends it; zero
// padding for every other command.
func commandPad(cmd byte, header []byte) byte {
	if cmd == CmdSetConfiguration && len(header) == 1 && header[0] == ConfigATS {
		return 0x80
	}
	return 0
}

// padAfterCRC pads pt (data and CRC) to a multiple of bs with pad and zeros.
func padAfterCRC(pt []byte, bs int, pad byte) []byte {
	if pad == 0 {
		return padZero(pt, bs)
	}
	return padM2(pt, bs)
}

// checkPadAfterCRC checks the padding after the CRC: pad then zeros (or
// zeros only when pad is 0), shorter than a block.
func checkPadAfterCRC(rest []byte, bs int, pad byte) bool {
	if len(rest) >= bs && !(pad != 0 && len(rest) == bs) {
		return false
	}
	if pad != 0 {
		return len(rest) > 0 && rest[0] == pad && allZero(rest[1:])
	}
	return allZero(rest)
}

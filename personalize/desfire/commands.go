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

// CommModeFor is the communication mode this client uses for cmd in an EV1
// or EV2 session; fileMode is the file's mode from its settings, used for the
// data and value commands. A card implementation applies the same table.
// Authentication commands and SelectApplication are never wrapped. In a
// legacy (0x0A) session every command but file data access and ChangeKey is
// plain, as on D40 cards (no MAC on GetKeySettings, CreateApplication...);
// this client supports only plain files there.
//
// Where the clear header ends (what UnwrapCommand gets as header): ReadData,
// WriteData, ReadRecords, WriteRecord 7 bytes; GetValue, Credit, Debit,
// LimitedCredit, ChangeKey, SetConfiguration, GetKeyVersion,
// GetFileSettings, DeleteFile 1 byte; ChangeKeySettings 0 bytes (its one
// byte is data); every other command has all its parameters in the header.
// In EV1 MAC mode a command carries a CMAC only when it has data after the
// header (WriteData, WriteRecord, Credit, Debit, LimitedCredit).
func CommModeFor(cmd byte, fileMode CommMode) CommMode {
	switch cmd {
	case CmdReadData, CmdWriteData, CmdGetValue, CmdCredit, CmdDebit,
		CmdLimitedCredit, CmdWriteRecord, CmdReadRecords:
		return fileMode
	case CmdGetCardUID, CmdChangeKeySettings, CmdSetConfiguration, CmdChangeKey:
		return CommFull
	}
	return CommMAC
}

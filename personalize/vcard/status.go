package vcard

import "github.com/loopcard/loopcard/personalize/desfire"

// Native status codes the card answers (second byte of the 91 xx trailer).
const (
	stOK               = desfire.StatusOK
	stNoChanges        = desfire.StatusNoChanges
	stOutOfEEPROM      = desfire.StatusOutOfEEPROM
	stIllegalCommand   = desfire.StatusIllegalCommand
	stIntegrityError   = desfire.StatusIntegrityError
	stNoSuchKey        = desfire.StatusNoSuchKey
	stLengthError      = desfire.StatusLengthError
	stPermissionDenied = desfire.StatusPermissionDenied
	stParameterError   = desfire.StatusParameterError
	stAppNotFound      = desfire.StatusApplicationNotFound
	stAuthError        = desfire.StatusAuthenticationError
	stAdditionalFrame  = desfire.StatusMoreFrames
	stBoundaryError    = desfire.StatusBoundaryError
	stCountError       = desfire.StatusCountError
	stDuplicateError   = desfire.StatusDuplicateError
	stFileNotFound     = desfire.StatusFileNotFound
)

// Native command codes.
const (
	cmdAuthLegacy         = desfire.CmdAuthenticateLegacy
	cmdAuthISO            = desfire.CmdAuthenticateISO
	cmdAuthAES            = desfire.CmdAuthenticateAES
	cmdAuthEV2First       = desfire.CmdAuthenticateEV2First
	cmdAuthEV2NonFirst    = desfire.CmdAuthenticateEV2NonFirst
	cmdAdditionalFrame    = desfire.CmdAdditionalFrame
	cmdGetVersion         = desfire.CmdGetVersion
	cmdGetCardUID         = desfire.CmdGetCardUID
	cmdGetApplicationIDs  = desfire.CmdGetApplicationIDs
	cmdSelectApplication  = desfire.CmdSelectApplication
	cmdCreateApplication  = desfire.CmdCreateApplication
	cmdDeleteApplication  = desfire.CmdDeleteApplication
	cmdFormatPICC         = desfire.CmdFormatPICC
	cmdChangeKey          = desfire.CmdChangeKey
	cmdChangeKeySettings  = desfire.CmdChangeKeySettings
	cmdGetKeySettings     = desfire.CmdGetKeySettings
	cmdGetKeyVersion      = desfire.CmdGetKeyVersion
	cmdSetConfiguration   = desfire.CmdSetConfiguration
	cmdCreateStdDataFile  = desfire.CmdCreateStdDataFile
	cmdCreateBackupFile   = desfire.CmdCreateBackupDataFile
	cmdCreateValueFile    = desfire.CmdCreateValueFile
	cmdCreateLinearRecord = desfire.CmdCreateLinearRecordFile
	cmdCreateCyclicRecord = desfire.CmdCreateCyclicRecordFile
	cmdDeleteFile         = desfire.CmdDeleteFile
	cmdGetFileIDs         = desfire.CmdGetFileIDs
	cmdGetFileSettings    = desfire.CmdGetFileSettings
	cmdChangeFileSettings = 0x5F
	cmdReadData           = desfire.CmdReadData
	cmdWriteData          = desfire.CmdWriteData
	cmdGetValue           = desfire.CmdGetValue
	cmdCredit             = desfire.CmdCredit
	cmdDebit              = desfire.CmdDebit
	cmdLimitedCredit      = desfire.CmdLimitedCredit
	cmdWriteRecord        = desfire.CmdWriteRecord
	cmdReadRecords        = desfire.CmdReadRecords
	cmdCommitTransaction  = desfire.CmdCommitTransaction
	cmdAbortTransaction   = desfire.CmdAbortTransaction
	cmdGetFreeMemory      = desfire.CmdGetFreeMemory
)

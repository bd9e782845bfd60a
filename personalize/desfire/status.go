package desfire

import (
	"errors"
	"fmt"
)

// Status codes (SW2 after SW1 0x91) of the native command set.
const (
	StatusOK                  byte = 0x00
	StatusNoChanges           byte = 0x0C
	StatusOutOfEEPROM         byte = 0x0E
	StatusIllegalCommand      byte = 0x1C
	StatusIntegrityError      byte = 0x1E
	StatusNoSuchKey           byte = 0x40
	StatusLengthError         byte = 0x7E
	StatusPermissionDenied    byte = 0x9D
	StatusParameterError      byte = 0x9E
	StatusApplicationNotFound byte = 0xA0
	StatusAppIntegrityError   byte = 0xA1
	StatusAuthenticationError byte = 0xAE
	StatusMoreFrames          byte = 0xAF
	StatusBoundaryError       byte = 0xBE
	StatusPICCIntegrityError  byte = 0xC1
	StatusCommandAborted      byte = 0xCA
	StatusPICCDisabled        byte = 0xCD
	StatusCountError          byte = 0xCE
	StatusDuplicateError      byte = 0xDE
	StatusMemoryError         byte = 0xEE
	StatusFileNotFound        byte = 0xF0
	StatusFileIntegrity       byte = 0xF1
)

// Sentinels matched by errors.Is against a *StatusError with that status.
var (
	ErrNoChanges           = errors.New("desfire: no changes")
	ErrOutOfEEPROM         = errors.New("desfire: out of EEPROM")
	ErrIllegalCommand      = errors.New("desfire: illegal command code")
	ErrIntegrityStatus     = errors.New("desfire: card reports integrity error")
	ErrNoSuchKey           = errors.New("desfire: no such key")
	ErrLength              = errors.New("desfire: length error")
	ErrPermissionDenied    = errors.New("desfire: permission denied")
	ErrParameter           = errors.New("desfire: parameter error")
	ErrApplicationNotFound = errors.New("desfire: application not found")
	ErrAppIntegrity        = errors.New("desfire: application integrity error")
	ErrAuthentication      = errors.New("desfire: authentication error")
	ErrMoreFrames          = errors.New("desfire: additional frame expected")
	ErrBoundary            = errors.New("desfire: boundary error")
	ErrPICCIntegrity       = errors.New("desfire: PICC integrity error")
	ErrCommandAborted      = errors.New("desfire: command aborted")
	ErrPICCDisabled        = errors.New("desfire: PICC disabled")
	ErrCount               = errors.New("desfire: count error")
	ErrDuplicate           = errors.New("desfire: duplicate")
	ErrMemory              = errors.New("desfire: EEPROM error")
	ErrFileNotFound        = errors.New("desfire: file not found")
	ErrFileIntegrity       = errors.New("desfire: file integrity error")
	// ErrUnknownStatus matches a status this package has no name for.
	ErrUnknownStatus = errors.New("desfire: unknown status")
)

// Errors of the secure channel and the framing (not card statuses).
var (
	// ErrIntegrity: a MAC, CRC, padding or authentication cryptogram received
	// from the other side does not verify.
	ErrIntegrity = errors.New("desfire: integrity check failed")
	// ErrMalformed: a response or command is too short, too long or not a
	// DESFire native APDU.
	ErrMalformed = errors.New("desfire: malformed message")
	// ErrCounterExhausted: the EV2 command counter reached 0xFFFF; authenticate again.
	ErrCounterExhausted = errors.New("desfire: command counter exhausted")
	// ErrNotAuthenticated: the command needs an authenticated session.
	ErrNotAuthenticated = errors.New("desfire: not authenticated")
	// ErrUnsupported: the combination of session and mode is not implemented.
	ErrUnsupported = errors.New("desfire: unsupported")
)

var statusSentinels = map[byte]error{
	StatusNoChanges:           ErrNoChanges,
	StatusOutOfEEPROM:         ErrOutOfEEPROM,
	StatusIllegalCommand:      ErrIllegalCommand,
	StatusIntegrityError:      ErrIntegrityStatus,
	StatusNoSuchKey:           ErrNoSuchKey,
	StatusLengthError:         ErrLength,
	StatusPermissionDenied:    ErrPermissionDenied,
	StatusParameterError:      ErrParameter,
	StatusApplicationNotFound: ErrApplicationNotFound,
	StatusAppIntegrityError:   ErrAppIntegrity,
	StatusAuthenticationError: ErrAuthentication,
	StatusMoreFrames:          ErrMoreFrames,
	StatusBoundaryError:       ErrBoundary,
	StatusPICCIntegrityError:  ErrPICCIntegrity,
	StatusCommandAborted:      ErrCommandAborted,
	StatusPICCDisabled:        ErrPICCDisabled,
	StatusCountError:          ErrCount,
	StatusDuplicateError:      ErrDuplicate,
	StatusMemoryError:         ErrMemory,
	StatusFileNotFound:        ErrFileNotFound,
	StatusFileIntegrity:       ErrFileIntegrity,
}

// StatusError is a card status other than OK in answer to command Cmd.
type StatusError struct {
	Cmd    byte
	Status byte
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%v (command 0x%02X, status 0x%02X)", e.sentinel(), e.Cmd, e.Status)
}

func (e *StatusError) sentinel() error {
	if s, ok := statusSentinels[e.Status]; ok {
		return s
	}
	return ErrUnknownStatus
}

// Is reports whether target is the sentinel for e's status.
func (e *StatusError) Is(target error) bool { return target == e.sentinel() }

// IsSuccess reports whether status means the command was executed: OK, or
// NoChanges (a commit or abort with nothing pending).
func IsSuccess(status byte) bool { return status == StatusOK || status == StatusNoChanges }

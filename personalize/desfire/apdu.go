package desfire

import "fmt"

// MaxFrameData is the largest data field this client puts in one command
// frame; longer commands continue in 0xAF frames.
const MaxFrameData = 55

// payloadWrapper is a secure-messaging session's command side.
type payloadWrapper interface {
	wrapPayload(cmd byte, header, data []byte, mode CommMode) ([]byte, error)
}

// wrapAPDU protects a command's payload with the session w and frames it
// as an APDU: the WrapCommand of every session.
func wrapAPDU(w payloadWrapper, cmd byte, header, data []byte, mode CommMode) ([]byte, error) {
	p, err := w.wrapPayload(cmd, header, data, mode)
	if err != nil {
		return nil, err
	}
	return buildAPDU(cmd, p)
}

// buildAPDU wraps a native command: 90 cmd 00 00 [Lc data] 00.
func buildAPDU(cmd byte, data []byte) ([]byte, error) {
	if len(data) > 255 {
		return nil, fmt.Errorf("%w: command data of %d bytes needs chaining", ErrMalformed, len(data))
	}
	if len(data) == 0 {
		return []byte{0x90, cmd, 0x00, 0x00, 0x00}, nil
	}
	out := make([]byte, 0, 6+len(data))
	out = append(out, 0x90, cmd, 0x00, 0x00, byte(len(data)))
	out = append(out, data...)
	return append(out, 0x00), nil
}

// ParseCommandAPDU is the card side of the framing: it returns the native
// command byte and data field of 90 INS 00 00 [Lc data] [Le].
func ParseCommandAPDU(apdu []byte) (cmd byte, data []byte, err error) {
	if len(apdu) < 4 || apdu[0] != 0x90 || apdu[2] != 0 || apdu[3] != 0 {
		return 0, nil, fmt.Errorf("%w: not a native wrapped command", ErrMalformed)
	}
	cmd = apdu[1]
	switch rest := apdu[4:]; {
	case len(rest) <= 1: // case 1 or 2: no data
		return cmd, nil, nil
	default:
		lc := int(rest[0])
		if lc == 0 || len(rest) < 1+lc || len(rest) > 2+lc {
			return 0, nil, fmt.Errorf("%w: Lc %d does not match length", ErrMalformed, lc)
		}
		return cmd, append([]byte(nil), rest[1:1+lc]...), nil
	}
}

// splitResponse splits data || 91 status.
func splitResponse(resp []byte) (body []byte, status byte, err error) {
	if len(resp) < 2 {
		return nil, 0, fmt.Errorf("%w: response of %d bytes", ErrMalformed, len(resp))
	}
	sw1 := resp[len(resp)-2]
	if sw1 != 0x91 {
		return nil, 0, fmt.Errorf("%w: status word %02X%02X", ErrMalformed, sw1, resp[len(resp)-1])
	}
	return resp[:len(resp)-2], resp[len(resp)-1], nil
}

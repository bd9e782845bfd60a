package keys

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/loopcard/loopcard/keys/pkcs11uri"
)

// ErrBadURI is returned for a PKCS#11 URI that does not follow RFC 7512 or
// lacks what Open needs.
var ErrBadURI = errors.New("bad PKCS#11 URI")

// ErrNoPIN is returned when a URI has neither pin-source nor pin-value, or
// its PIN file cannot be read.
var ErrNoPIN = errors.New("no PIN")

// URI is a parsed RFC 7512 PKCS#11 URI naming a token, and how to log in to
// it. The PIN given by pin-value is kept unexported and never printed;
// pin-source names a file (a file: URI or a path) holding the PIN.
type URI struct {
	Token        string // path attribute token: the token label
	Manufacturer string // path attribute manufacturer
	Serial       string // path attribute serial
	Model        string // path attribute model
	Object       string // path attribute object: an object label (unused by Open)
	ID           []byte // path attribute id
	SlotID       *uint  // path attribute slot-id
	ModulePath   string // query attribute module-path: the PKCS#11 library
	PINSource    string // query attribute pin-source

	pinValue *[]byte // query attribute pin-value; a pointer keeps it out of %v
}

// ParseURI parses a PKCS#11 URI such as
// "pkcs11:token=loopcard?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:///etc/loopcard/pin".
// Errors wrap ErrBadURI and never contain the PIN.
func ParseURI(s string) (*URI, error) {
	rest, ok := strings.CutPrefix(s, "pkcs11:")
	if !ok {
		return nil, fmt.Errorf("%w: must start with \"pkcs11:\"", ErrBadURI)
	}
	path, query, _ := strings.Cut(rest, "?")
	u := &URI{}
	seen := map[string]bool{}
	if path != "" {
		for _, attr := range strings.Split(path, ";") {
			name, value, err := splitAttr(attr, seen)
			if err != nil {
				return nil, err
			}
			switch name {
			case "token":
				u.Token = value
			case "manufacturer":
				u.Manufacturer = value
			case "serial":
				u.Serial = value
			case "model":
				u.Model = value
			case "object":
				u.Object = value
			case "id":
				u.ID = []byte(value)
			case "slot-id":
				n, err := strconv.ParseUint(value, 10, 32)
				if err != nil {
					return nil, fmt.Errorf("%w: slot-id %q is not a number", ErrBadURI, value)
				}
				id := uint(n)
				u.SlotID = &id
			case "type", "library-manufacturer", "library-description", "library-version",
				"slot-description", "slot-manufacturer":
				// Valid RFC 7512 attributes that do not select a token here.
			default:
				if !strings.HasPrefix(name, "x-") {
					return nil, fmt.Errorf("%w: unknown path attribute %q", ErrBadURI, name)
				}
			}
		}
	}
	if query != "" {
		for _, attr := range strings.Split(query, "&") {
			name, value, err := splitAttr(attr, seen)
			if err != nil {
				return nil, err
			}
			switch name {
			case "module-path":
				u.ModulePath = value
			case "pin-source":
				u.PINSource = value
			case "pin-value":
				v := []byte(value)
				u.pinValue = &v
			case "module-name":
				return nil, fmt.Errorf("%w: module-name is not supported: give module-path", ErrBadURI)
			default:
				if !strings.HasPrefix(name, "x-") {
					return nil, fmt.Errorf("%w: unknown query attribute %q", ErrBadURI, name)
				}
			}
		}
	}
	if u.PINSource != "" && u.pinValue != nil {
		return nil, fmt.Errorf("%w: give pin-source or pin-value, not both", ErrBadURI)
	}
	return u, nil
}

// splitAttr splits name=value, percent-decodes value and rejects repeats.
// Values never appear in errors: one of them may be a PIN.
func splitAttr(attr string, seen map[string]bool) (string, string, error) {
	name, raw, ok := strings.Cut(attr, "=")
	if !ok || name == "" {
		return "", "", fmt.Errorf("%w: attribute %q has no name=value form", ErrBadURI, redactAttr(attr))
	}
	if seen[name] {
		return "", "", fmt.Errorf("%w: attribute %q given twice", ErrBadURI, name)
	}
	seen[name] = true
	value, err := url.PathUnescape(raw)
	if err != nil {
		return "", "", fmt.Errorf("%w: attribute %q has a bad percent-encoding", ErrBadURI, name)
	}
	return name, value, nil
}

func redactAttr(attr string) string {
	if strings.HasPrefix(attr, "pin-value") {
		return "pin-value"
	}
	return attr
}

// String returns the URI with any pin-value replaced by "REDACTED".
func (u *URI) String() string {
	var path []string
	add := func(list *[]string, name, value string) {
		if value != "" {
			*list = append(*list, name+"="+pkcs11uri.Escape(value))
		}
	}
	add(&path, "token", u.Token)
	add(&path, "manufacturer", u.Manufacturer)
	add(&path, "serial", u.Serial)
	add(&path, "model", u.Model)
	add(&path, "object", u.Object)
	add(&path, "id", string(u.ID))
	if u.SlotID != nil {
		path = append(path, "slot-id="+strconv.FormatUint(uint64(*u.SlotID), 10))
	}
	var query []string
	add(&query, "module-path", u.ModulePath)
	add(&query, "pin-source", u.PINSource)
	if u.pinValue != nil {
		query = append(query, "pin-value=REDACTED")
	}
	s := "pkcs11:" + strings.Join(path, ";")
	if len(query) > 0 {
		s += "?" + strings.Join(query, "&")
	}
	return s
}

// readPIN returns the user PIN from pin-value or the pin-source file (a
// file: URI or a plain path; one trailing newline is ignored).
// It returns an error wrapping ErrNoPIN when there is none.
func (u *URI) readPIN() (*secretBytes, error) {
	if u.pinValue != nil {
		return newSecretBytes(*u.pinValue), nil
	}
	if u.PINSource == "" {
		return nil, fmt.Errorf("%w: the HSM URI needs pin-source=file:///path/to/pin-file", ErrNoPIN)
	}
	path := u.PINSource
	if strings.HasPrefix(path, "file:") {
		pu, err := url.Parse(path)
		if err != nil || (pu.Host != "" && pu.Host != "localhost") {
			return nil, fmt.Errorf("%w: pin-source %q is not a local file: URI", ErrBadURI, u.PINSource)
		}
		path = pu.Path
	} else if strings.Contains(path, ":") {
		return nil, fmt.Errorf("%w: pin-source %q: only file: URIs and paths are supported", ErrBadURI, u.PINSource)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot read the pin-source file %s: %w", ErrNoPIN, path, err)
	}
	defer clear(b)
	n := len(b)
	if n > 0 && b[n-1] == '\n' {
		n--
	}
	if n > 0 && b[n-1] == '\r' {
		n--
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: the pin-source file %s is empty", ErrNoPIN, path)
	}
	return newSecretBytes(b[:n]), nil
}

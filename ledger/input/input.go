// Package input checks what a caller sends before PostgreSQL or a parser
// sees it, and cleans what is stored for the record. It is the one place
// that says what a string or an amount may be: text is valid UTF-8 without
// NUL bytes (PostgreSQL refuses either) and within a length bound; an
// amount is positive and at most MaxAmount, so that no sum of them
// overflows an int64. Clean makes any string storable in an audit record.
//
// It imports only the standard library: the API, the ledger, the commands
// and clients may all use it.
package input

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrInvalid is wrapped by every error of this package.
var ErrInvalid = errors.New("invalid input")

// Error names the field that was refused and why. Its text holds no part
// of the value (which may be a secret or hostile bytes): it can be shown
// to the caller as it is.
type Error struct {
	Field  string
	Reason string
}

func (e *Error) Error() string { return e.Field + ": " + e.Reason }

// Is makes every Error match ErrInvalid.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// Bounds.
const (
	// MaxText is the longest string a request may carry in any field
	// (bytes), unless a field says less.
	MaxText = 1024
	// MaxName is the longest name of an organizer, event, merchant, store
	// or person (bytes).
	MaxName = 200
	// MaxAmount is the largest amount in minor units: a DESFire value
	// file's largest balance (2^31-1), so no card can hold more. Sums of
	// up to 2^32 such amounts fit in an int64.
	MaxAmount int64 = 1<<31 - 1
)

// Text checks that s is valid UTF-8 without NUL and at most max bytes
// long. It may be empty.
func Text(field, s string, max int) error {
	switch {
	case !utf8.ValidString(s):
		return &Error{field, "must be valid UTF-8"}
	case strings.IndexByte(s, 0) >= 0:
		return &Error{field, "must not contain a NUL byte"}
	case len(s) > max:
		return &Error{field, fmt.Sprintf("must be at most %d bytes", max)}
	}
	return nil
}

// Name checks a display name: Text of at most MaxName bytes, not blank,
// on one line (no control characters).
func Name(field, s string) error {
	if err := Text(field, s, MaxName); err != nil {
		return err
	}
	if strings.TrimSpace(s) == "" {
		return &Error{field, "is required"}
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return &Error{field, "must not contain control characters"}
	}
	return nil
}

// Amount checks that n is an amount of money: 1 to MaxAmount.
func Amount(field string, n int64) error {
	if n <= 0 || n > MaxAmount {
		return &Error{field, fmt.Sprintf("must be 1 to %d", MaxAmount)}
	}
	return nil
}

// AmountOrZero checks that n is 0 to MaxAmount (a deposit, a counted
// cash float).
func AmountOrZero(field string, n int64) error {
	if n < 0 || n > MaxAmount {
		return &Error{field, fmt.Sprintf("must be 0 to %d", MaxAmount)}
	}
	return nil
}

// Strings checks every string reachable from v (a decoded request: the
// exported fields of structs, slices, arrays, map keys and values,
// through pointers) with Text and max. The field is named by its JSON
// name where it has one.
func Strings(v any, max int) error {
	return walk(reflect.ValueOf(v), "body", max, 0)
}

// maxDepth bounds the walk; a decoded JSON body has no cycles, but a
// caller's value might.
const maxDepth = 32

func walk(v reflect.Value, path string, max, depth int) error {
	if depth > maxDepth {
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		return Text(path, v.String(), max)
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return walk(v.Elem(), path, max, depth+1)
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name := f.Name
			if tag, _, _ := strings.Cut(f.Tag.Get("json"), ","); tag == "-" {
				continue
			} else if tag != "" {
				name = tag
			}
			p := name
			if !f.Anonymous && path != "body" {
				p = path + "." + name
			} else if f.Anonymous {
				p = path
			}
			if err := walk(v.Field(i), p, max, depth+1); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return nil // bytes (base64 in JSON), not text
		}
		for i := range v.Len() {
			if err := walk(v.Index(i), fmt.Sprintf("%s[%d]", path, i), max, depth+1); err != nil {
				return err
			}
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			if err := walk(it.Key(), path+" key", max, depth+1); err != nil {
				return err
			}
			if err := walk(it.Value(), path, max, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// Clean makes s storable as text anywhere: bytes that are not UTF-8 become
// U+FFFD, a NUL becomes the four characters `\x00`, and the result is cut
// to at most max bytes on a character boundary. For audit records and
// alerts, which must be written whatever a caller sent.
func Clean(s string, max int) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 && len(s) <= max {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", `\x00`)
	if len(s) <= max {
		return s
	}
	cut := 0
	for i := range s {
		if i > max {
			break
		}
		cut = i
	}
	return s[:cut]
}

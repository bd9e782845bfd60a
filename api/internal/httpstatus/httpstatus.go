// Package httpstatus records the status code a handler writes, for the
// access logs and metrics of the API and the card page, and holds what
// every page server (card page, HQ console, POS apps) does around a
// request: the security headers, a request id, panic recovery.
package httpstatus

import "net/http"

// Writer is an http.ResponseWriter that remembers the status code written:
// the first WriteHeader's code, or 200 when Write comes first. Status is 0
// while nothing has been written.
type Writer struct {
	http.ResponseWriter
	Status int
}

// WriteHeader records code (the first time) and passes it on.
func (w *Writer) WriteHeader(code int) {
	if w.Status == 0 {
		w.Status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write records 200 when no status was written and passes b on.
func (w *Writer) Write(b []byte) (int, error) {
	if w.Status == 0 {
		w.Status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

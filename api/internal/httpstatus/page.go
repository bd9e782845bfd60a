package httpstatus

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
)

// PageHeaders sets the security headers every page of Loopcard's carries
// (the card page, the HQ console, the POS apps) with the page's Content
// Security Policy, and a fresh request id, which it returns. Callers add
// their own on top (HSTS where served over TLS, caching).
func PageHeaders(h http.Header, csp string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	h.Set("X-Request-Id", id)
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	return id
}

// RecoverPage is deferred by a page server: a panic (other than
// http.ErrAbortHandler, passed on) is logged as msg with the request id
// and its stack, and answered with a bare 500 when nothing was written.
func RecoverPage(log *slog.Logger, msg, id string, w *Writer) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler {
		panic(v)
	}
	log.Error(msg, "request_id", id, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	if w.Status == 0 {
		http.Error(w, "internal error", http.StatusInternalServerError)
	}
}

package httpstatus

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

// serve runs h the way the page servers do.
func serve(log *slog.Logger, h func(w *Writer)) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	sw := &Writer{ResponseWriter: rec}
	id := PageHeaders(sw.Header(), "default-src 'none'")
	func() {
		defer RecoverPage(log, "test: panic", id, sw)
		h(sw)
	}()
	return rec
}

func TestPageHeadersAndRecover(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	rec := serve(log, func(w *Writer) { panic("boom") })
	require.Equal(t, http.StatusInternalServerError, rec.Code, "a panic before writing is a 500")
	require.Equal(t, "internal error\n", rec.Body.String(), "and says nothing more")
	require.Equal(t, "default-src 'none'", rec.Header().Get("Content-Security-Policy"))
	require.Equal(t, "DENY", rec.Header().Get("X-Frame-Options"))
	require.Len(t, rec.Header().Get("X-Request-Id"), 24)
	require.Contains(t, logs.String(), "boom")
	require.Contains(t, logs.String(), rec.Header().Get("X-Request-Id"), "the log names the request")

	rec = serve(log, func(w *Writer) { w.WriteHeader(http.StatusAccepted); panic("late") })
	require.Equal(t, http.StatusAccepted, rec.Code, "a status already written stays")

	require.PanicsWithValue(t, http.ErrAbortHandler, func() {
		serve(log, func(w *Writer) { panic(http.ErrAbortHandler) })
	}, "an aborted handler is passed on")
	require.NotEqual(t, serve(log, func(*Writer) {}).Header().Get("X-Request-Id"),
		serve(log, func(*Writer) {}).Header().Get("X-Request-Id"), "a fresh id per request")
}

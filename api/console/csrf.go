package console

import (
	"net/http"

	"github.com/loopcard/loopcard/api/internal/csrf"
)

// The console's forms are protected by api/internal/csrf's double submit,
// as the card pages' are, with a cookie of their own. The session cookie
// is SameSite=Strict too.
var csrfGuard = csrf.Guard{Cookie: "__Host-lc_console_csrf"}

const sessionCookie = "__Host-lc_staff"

func withCSRFSlot(r *http.Request) *http.Request              { return csrfGuard.WithSlot(r) }
func csrfToken(w http.ResponseWriter, r *http.Request) string { return csrfGuard.Token(w, r) }
func checkCSRF(r *http.Request) bool                          { return csrfGuard.Check(r) }

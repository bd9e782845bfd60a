package cardpage

import (
	"net/http"

	"github.com/loopcard/loopcard/api/internal/csrf"
)

// The card pages' forms are protected by api/internal/csrf's double
// submit, with a cookie of their own.
var csrfGuard = csrf.Guard{Cookie: "__Host-lc_csrf"}

func withCSRFSlot(r *http.Request) *http.Request              { return csrfGuard.WithSlot(r) }
func csrfToken(w http.ResponseWriter, r *http.Request) string { return csrfGuard.Token(w, r) }
func checkCSRF(r *http.Request) bool                          { return csrfGuard.Check(r) }

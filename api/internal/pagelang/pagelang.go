// Package pagelang picks the language of a Loopcard page (the card page,
// the HQ console, the POS apps): English or Dutch.
package pagelang

import (
	"net/http"
	"strconv"
	"strings"
)

// The languages the pages speak; English is the fallback.
const (
	English = "en"
	Dutch   = "nl"
)

// Langs are the languages offered in a page's language switch.
var Langs = []string{English, Dutch}

// Pick chooses the language of r: an explicit ?lang= (explicit is then
// true), then the language switch's cookie, then Accept-Language (by
// quality), then English.
func Pick(r *http.Request, cookie string) (lang string, explicit bool) {
	if l, ok := parse(r.URL.Query().Get("lang")); ok {
		return l, true
	}
	if c, err := r.Cookie(cookie); err == nil {
		if l, ok := parse(c.Value); ok {
			return l, false
		}
	}
	return Accept(r.Header.Get("Accept-Language")), false
}

func parse(s string) (string, bool) {
	for _, l := range Langs {
		if strings.EqualFold(s, l) {
			return l, true
		}
	}
	return "", false
}

// Accept picks the best of Langs from an Accept-Language header (RFC 9110
// 12.5.4): the highest quality wins, the first listed on a tie; English
// when none is named.
func Accept(h string) string {
	best, bestQ := English, -1.0
	for part := range strings.SplitSeq(h, ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				continue
			}
			q = f
		}
		primary, _, _ := strings.Cut(tag, "-")
		l, ok := parse(primary)
		if !ok || q <= 0 || q <= bestQ {
			continue
		}
		best, bestQ = l, q
	}
	return best
}

package keys

import (
	"context"
	"log/slog"
	"os/user"
)

// audit logs one privileged action: who (the OS user), what, and the
// outcome. Callers pass only labels, KCVs and counts, never key material.
func (h *HSM) audit(action string, err error, attrs ...slog.Attr) {
	attrs = append([]slog.Attr{slog.String("who", h.who), slog.String("action", action)}, attrs...)
	if err != nil {
		attrs = append(attrs, slog.String("outcome", "failed"), slog.String("error", err.Error()))
		h.log.LogAttrs(context.Background(), slog.LevelWarn, "audit", attrs...)
		return
	}
	attrs = append(attrs, slog.String("outcome", "ok"))
	h.log.LogAttrs(context.Background(), slog.LevelInfo, "audit", attrs...)
}

func osUser() string {
	u, err := user.Current()
	if err != nil {
		return "unknown"
	}
	return u.Username
}

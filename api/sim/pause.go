package sim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
)

// StopServer stops serving the API (gracefully), as a server that went
// away: clients' connections are refused until StartServer. For
// StartStack's stacks only.
func (s *Stack) StopServer() error {
	if err := s.stopServing(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("sim: stop serving: %w", err)
	}
	return nil
}

// StartServer serves the API again on its address after StopServer.
func (s *Stack) StartServer(ctx context.Context) error {
	ln, err := net.Listen("tcp", strings.TrimPrefix(s.URL, "https://"))
	if err != nil {
		return fmt.Errorf("sim: listen again: %w", err)
	}
	s.serve(ctx, ln)
	return nil
}

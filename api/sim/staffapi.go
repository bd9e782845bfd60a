package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/loopcard/loopcard/api/apitype"
)

// staffCall sends a JSON request with a staff bearer token.
func staffCall(ctx context.Context, hc *http.Client, url, token, method, path string, in, out any) error {
	return staffMoneyCall(ctx, hc, url, token, "", method, path, in, out)
}

// staffMoneyCall is staffCall with an Idempotency-Key header (when idem is
// not empty), as the API requires on money routes.
func staffMoneyCall(ctx context.Context, hc *http.Client, url, token, idem, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, url+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	if idem != "" {
		req.Header.Set(apitype.HeaderIdempotencyKey, idem)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("sim: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("sim: %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("sim: %s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// CreateTerminal registers a terminal of merchant for event (empty: the
// organizer's only one) through the HQ API and returns its one-time
// enrolment token.
func CreateTerminal(ctx context.Context, hc *http.Client, url, hqToken, id, merchant, event string) (string, error) {
	var tr apitype.TerminalResponse
	if err := staffCall(ctx, hc, url, hqToken, "POST", "/v1/hq/terminals", apitype.TerminalRequest{Terminal: id, Merchant: merchant, Event: event}, &tr); err != nil {
		return "", err
	}
	return tr.EnrolmentToken, nil
}

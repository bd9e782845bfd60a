package terminal

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/api/httpsig"
)

// HTTPError is an answer of the API other than 2xx.
type HTTPError struct {
	Status  int
	Message string // the API's public error message
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("terminal: API answered %d: %s", e.Status, e.Message)
}

// Temporary reports whether the request may succeed when repeated later.
func (e *HTTPError) Temporary() bool {
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// client is the terminal's side of the HTTPS API.
type client struct {
	base   string
	http   *http.Client
	signer *httpsig.Signer
}

// call sends a JSON request; sign signs it with the terminal's key,
// session names the current session key.
func (c *client) call(ctx context.Context, method, path string, in, out any, sign bool, session string) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("terminal: encode request: %w", err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.base, "/")+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("terminal: request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if session != "" {
		req.Header.Set(apitype.HeaderSessionKey, session)
	}
	if sign {
		if c.signer == nil {
			return errors.New("terminal: not enrolled")
		}
		if err := c.signer.Sign(req, body); err != nil {
			return err
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("terminal: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("terminal: %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(b, &e)
		return &HTTPError{Status: resp.StatusCode, Message: e.Error}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("terminal: %s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

func newSigner(priv ed25519.PrivateKey, keyID string) *httpsig.Signer {
	return httpsig.NewSigner(priv, keyID)
}

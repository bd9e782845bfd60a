package runbook

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"time"

	"github.com/chromedp/chromedp"
)

// ErrNoChromium means Debian's chromium is not installed, so the card page
// cannot be opened in a real browser.
var ErrNoChromium = errors.New("chromium not found: install the Debian package chromium (scripts/setup does)")

// serverSPKI connects to the API, verifies its certificate against the CA
// file as any client does, and returns the base64 SHA-256 of the server
// key, which Chromium is then told to trust for this run only.
func (r *runner) serverSPKI(ctx context.Context) (string, error) {
	pem, err := os.ReadFile(r.caFile)
	if err != nil {
		return "", err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return "", fmt.Errorf("%s holds no certificate", r.caFile)
	}
	u, err := url.Parse(r.apiURL)
	if err != nil {
		return "", err
	}
	d := tls.Dialer{Config: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13, ServerName: u.Hostname()}}
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return "", fmt.Errorf("the API's certificate: %w", err)
	}
	defer conn.Close()
	leaf := conn.(*tls.Conn).ConnectionState().PeerCertificates[0]
	sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:]), nil
}

// openCardPage opens the card's page in headless Chromium at phone size, as
// the cardholder does after scanning the QR code, and returns the page's
// text, and writes a PNG screenshot to shot.
func (r *runner) openCardPage(ctx context.Context, c *card, shot string) (string, error) {
	exe, err := exec.LookPath("chromium")
	if err != nil {
		return "", ErrNoChromium
	}
	spki, err := r.serverSPKI(ctx)
	if err != nil {
		return "", err
	}
	profile, err := os.MkdirTemp("", "loopcard-chromium-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(profile)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(profile), chromedp.WindowSize(390, 844),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("disable-extensions", true),
		// Trust this run's API key only, which Go verified against the CA above.
		chromedp.Flag("ignore-certificate-errors-spki-list", spki),
		chromedp.Flag("lang", "en-US"),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelTab := chromedp.NewContext(actx)
	defer cancelTab()
	bctx, cancel := context.WithTimeout(bctx, 60*time.Second)
	defer cancel()
	err = chromedp.Do(bctx,
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
		chromedp.Navigate(r.apiURL+"/c/"+c.token),
		chromedp.WaitReady(chromedp.CSS("footer")))
	if err != nil {
		return "", fmt.Errorf("chromium: %w", err)
	}
	text, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		return "", fmt.Errorf("chromium: %w", err)
	}
	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		return "", fmt.Errorf("chromium: %w", err)
	}
	if err := os.WriteFile(shot, png, 0o600); err != nil {
		return "", err
	}
	return text, nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/loopcard/loopcard/api/pos"
	"github.com/loopcard/loopcard/api/storeclient"
	"github.com/loopcard/loopcard/api/terminal"
	lmenu "github.com/loopcard/loopcard/ledger/menu"
	"github.com/loopcard/loopcard/personalize/reader/pcsc"
)

// posFlags are the flags of both POS apps.
func posFlags(port string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "listen", Value: "127.0.0.1:" + port, Usage: "address the touch screen's browser opens (loopback only, unless --allow-remote)"},
		&cli.BoolFlag{Name: "allow-remote", Usage: "listen beyond loopback: the app has no TLS and no sign-in, so only on a network of the till's own"},
	}
}

// posListen listens on --listen, refusing an address beyond loopback
// without --allow-remote.
func posListen(c *cli.Context) (net.Listener, error) {
	addr := c.String("listen")
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--listen %s: %w (give HOST:PORT, such as 127.0.0.1:8470)", addr, err)
	}
	ip := net.ParseIP(host)
	if host != "localhost" && (ip == nil || !ip.IsLoopback()) && !c.Bool("allow-remote") {
		return nil, fmt.Errorf("--listen %s is beyond loopback: the app has no TLS and no sign-in; run the browser on this machine (127.0.0.1:PORT) or add --allow-remote", addr)
	}
	return net.Listen("tcp", addr)
}

// servePOS serves h on ln until ctx ends.
func servePOS(ctx context.Context, c *cli.Context, ln net.Listener, h http.Handler, what string) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	fmt.Fprintf(c.App.ErrWriter, "%s on http://%s/ (open it in the touch screen's browser; Ctrl-C stops)\n", what, ln.Addr())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func terminalUICommand() *cli.Command {
	return &cli.Command{
		Name:  "ui",
		Usage: "the bar's touch-screen app over this terminal's reader and queue, served on loopback: products, basket, present card, paid or declined, last transactions, offline queue",
		Description: "Takes payments like `terminal pay`, offline too (the queue is uploaded in the background when the server answers).\n" +
			"The products are the merchant's menu as the terminal last synced it (`loopcard menu set --merchant M FILE` on the server;\n" +
			"the terminal fetches it with its session key and keeps it for offline use); such a basket is paid with its line items, and\n" +
			"voids and deposit returns (online) credit the card on the reader. Until the terminal has a menu, --menu FILE (JSON or CSV,\n" +
			"as menu set takes) gives the buttons, and a basket is paid as one amount without line items.",
		Flags: append(append([]cli.Flag{
			&cli.StringFlag{Name: "reader", Required: true, Usage: "PC/SC reader name, index or part of its name"},
			&cli.StringFlag{Name: "menu", Usage: "menu `FILE`, JSON or CSV as menu set takes (used while the terminal has no menu of its own)"},
			&cli.DurationFlag{Name: "upload-every", Value: 5 * time.Second, Usage: "how often the background uploader runs"},
		}, posFlags("8470")...), terminalFlags...),
		Action: terminalUI,
	}
}

func terminalUI(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("terminal ui takes no arguments")
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	var menu *lmenu.Menu
	if f := c.String("menu"); f != "" {
		m, err := pos.LoadMenuFile(f)
		if err != nil {
			return err
		}
		menu = &m
	}
	ln, err := posListen(c)
	if err != nil {
		return err
	}
	defer ln.Close()
	t, err := openTerminal(c)
	if err != nil {
		return err
	}
	defer t.Close()
	// Offline, a session key that is still valid is kept.
	if err := t.EnsureSessionKey(ctx); err != nil {
		return fmt.Errorf("%w (the terminal needs the server once for a session key)", err)
	}
	// The merchant's menu as it is now (it also comes with every session
	// key); offline, the one kept on disk is used.
	if _, err := t.SyncMenu(ctx); err != nil {
		logger(c).Info("terminal ui: menu not synced; the one kept is used", "err", err)
	}
	r, err := pcsc.Open(c.String("reader"))
	if err != nil {
		return err
	}
	defer r.Close()
	till := pos.NewTerminalTill(t, menu)
	bar, err := pos.NewBar(pos.BarOptions{Till: till, Reader: r, Logger: logger(c)})
	if err != nil {
		return err
	}
	upCtx, stopUp := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t.RunUploader(upCtx, c.Duration("upload-every"), terminal.Backoff{}, till.Report)
	}()
	defer func() { stopUp(); <-done }()
	return servePOS(ctx, c, ln, bar, fmt.Sprintf("terminal %s (merchant %s) on %s", t.ID(), t.Merchant(), r.Name()))
}

func storeUICommand() *cli.Command {
	fs := append(storeClientFlags(
		&cli.Int64Flag{Name: "deposit", Value: 500, Usage: "the sale form's deposit, in cents"},
		&cli.Int64Flag{Name: "credit", Value: 0, Usage: "the sale form's credit, in cents"},
	), posFlags("8471")...)
	return &cli.Command{
		Name:   "ui",
		Usage:  "the store till's touch-screen app over the store client, served on loopback: sell a card, cash top-up, balance, the day's cash and its close",
		Flags:  fs,
		Action: storeUI,
	}
}

func storeUI(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("store ui takes no arguments")
	}
	if c.String("state") == "" {
		return errors.New("--state is required: the store client's state directory (or set LOOPCARD_STORE_STATE)")
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := posListen(c)
	if err != nil {
		return err
	}
	defer ln.Close()
	cfg, err := storeAPIConfig(c)
	if err != nil {
		return err
	}
	sc, err := storeclient.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer sc.Close()
	r, err := pcsc.Open(c.String("reader"))
	if err != nil {
		return err
	}
	defer r.Close()
	st, err := pos.NewStore(pos.StoreOptions{Client: sc, Reader: r, Deposit: c.Int64("deposit"), Credit: c.Int64("credit"),
		TallyFile: pos.TallyFile(cfg.StateDir), Logger: logger(c)})
	if err != nil {
		return err
	}
	return servePOS(ctx, c, ln, st, fmt.Sprintf("store %s on %s", cfg.Store, r.Name()))
}

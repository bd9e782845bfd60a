package main

import (
	"fmt"
	"sync"

	"github.com/urfave/cli/v2"

	"github.com/loopcard/loopcard/api/stack"
	"github.com/loopcard/loopcard/softhsm"
)

// parts are what a command opens of the installation.
type parts uint8

const (
	// partHSM is --hsm (LOOPCARD_HSM) or the embedded SoftHSM2 token.
	partHSM parts = 1 << iota
	// partDatabase is --database-url or the embedded PostgreSQL, migrated,
	// with the ledger (sealing with the HSM when partHSM is asked too)
	// and the batch store.
	partDatabase
	// partDatabaseServer is only the database's URL, the embedded server
	// started if needed and the schema left alone (backup, restore).
	partDatabaseServer
)

var embeddedNotice sync.Once

// openStack opens the parts of the installation named by --data-dir, --hsm
// and --database-url that a command needs (package api/stack). The
// embedded SoftHSM2 token is announced when it is created, the embedded
// PostgreSQL once per process; Close releases everything, stopping an
// embedded server this process started.
func openStack(c *cli.Context, p parts) (*stack.Stack, error) {
	cfg := getConfig(c)
	s := stack.New(stack.Config{DataDir: cfg.DataDir, HSMURI: cfg.HSMURI, DatabaseURL: cfg.DatabaseURL, Logger: logger(c)})
	if err := openParts(c, s, p); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func openParts(c *cli.Context, s *stack.Stack, p parts) error {
	cfg := getConfig(c)
	if p&partHSM != 0 {
		if err := s.OpenHSM(); err != nil {
			return err
		}
		if s.HSMCreated {
			fmt.Fprintf(c.App.ErrWriter, "loopcard: no --hsm given: created a SoftHSM2 token %q under %s (PIN in its 0600 file %s); use --hsm for a real HSM\n",
				softhsm.EmbeddedLabel, cfg.DataDir, "softhsm/pin")
		}
	}
	if p&(partDatabase|partDatabaseServer) == 0 {
		return nil
	}
	var err error
	if p&partDatabase != 0 {
		err = s.OpenDatabase(c.Context)
	} else {
		err = s.StartDatabase(c.Context)
	}
	if err == nil && cfg.DatabaseURL == "" {
		embeddedNotice.Do(func() {
			fmt.Fprintf(c.App.ErrWriter, "loopcard: using the embedded PostgreSQL in %s (set --database-url to use another)\n", stack.PostgresDir(cfg.DataDir))
		})
	}
	return err
}

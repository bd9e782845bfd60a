package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/loopcard/loopcard/ledger/backup"
)

func backupCommand() *cli.Command {
	return &cli.Command{
		Name:  "backup",
		Usage: "write an encrypted dump of the database (file key sealed by the HSM's data-kek)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Required: true, Usage: "write the backup to this new file (mode 0600)"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		},
		Action: func(c *cli.Context) (err error) {
			if c.NArg() > 0 {
				return fmt.Errorf("usage: loopcard backup --out FILE [--json]")
			}
			st, err := openStack(c, partHSM|partDatabaseServer)
			if err != nil {
				return err
			}
			defer st.Close()
			path := c.String("out")
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			defer func() {
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					_ = os.Remove(path)
				}
			}()
			info, err := backup.Write(c.Context, st.DatabaseURL, st.HSM, f)
			if err != nil {
				return err
			}
			if err := f.Sync(); err != nil {
				return err
			}
			logger(c).Info("backup written", "file", path, "bytes", info.Bytes, "kek", info.KEK)
			if c.Bool("json") {
				return printJSON(c, map[string]any{"file": path, "created": info.Created, "dump_bytes": info.Bytes, "kek": info.KEK})
			}
			fmt.Fprintf(c.App.Writer, "backup written to %s (%d bytes of dump, key sealed by %s)\n", path, info.Bytes, info.KEK)
			return nil
		},
	}
}

func restoreCommand() *cli.Command {
	return &cli.Command{
		Name:  "restore",
		Usage: "restore an encrypted backup into an empty database (all or nothing)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "in", Required: true, Usage: "the backup file"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("usage: loopcard restore --in FILE")
			}
			f, err := os.Open(c.String("in"))
			if err != nil {
				return err
			}
			defer f.Close()
			st, err := openStack(c, partHSM|partDatabaseServer)
			if err != nil {
				return err
			}
			defer st.Close()
			err = backup.Restore(c.Context, f, st.HSM, st.DatabaseURL)
			switch {
			case errors.Is(err, backup.ErrFormat), errors.Is(err, backup.ErrTampered):
				return fmt.Errorf("%w: nothing was restored", err)
			case err != nil:
				return fmt.Errorf("%w (the target database must be empty; nothing was restored)", err)
			}
			fmt.Fprintln(c.App.Writer, "restored")
			return nil
		},
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"

	"github.com/urfave/cli/v2"
)

const configKey = "loopcard.config"

// config is everything the global flags decide, validated once before any
// subcommand runs. Empty HSMURI and DatabaseURL mean "embedded default":
// a SoftHSM2 token and a private PostgreSQL cluster under DataDir.
type config struct {
	DataDir     string
	HSMURI      string
	DatabaseURL string
}

func globalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{
			Name:    "data-dir",
			Usage:   "directory for the embedded HSM token, database and outputs",
			EnvVars: []string{"LOOPCARD_DATA_DIR"},
		},
		&cli.StringFlag{
			Name:    "hsm",
			Usage:   "PKCS#11 URI of the HSM token (RFC 7512); default: a SoftHSM2 token under the data directory",
			EnvVars: []string{"LOOPCARD_HSM"},
		},
		&cli.StringFlag{
			Name:    "operator",
			Usage:   "who runs the command, for the audit log of HQ's commands; default: $USER",
			EnvVars: []string{"LOOPCARD_OPERATOR"},
		},
		&cli.StringFlag{
			Name:    "database-url",
			Usage:   "PostgreSQL URL; default: a private PostgreSQL under the data directory",
			EnvVars: []string{"LOOPCARD_DATABASE_URL"},
		},
	}
}

func configFromContext(c *cli.Context) (*config, error) {
	cfg := &config{
		DataDir:     c.String("data-dir"),
		HSMURI:      c.String("hsm"),
		DatabaseURL: c.String("database-url"),
	}
	if cfg.DataDir == "" {
		d, err := defaultDataDir()
		if err != nil {
			return nil, err
		}
		cfg.DataDir = d
	}
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data directory %q: %w", cfg.DataDir, err)
	}
	cfg.DataDir = abs
	return cfg, nil
}

// defaultDataDir follows the XDG base directory convention:
// $XDG_DATA_HOME/loopcard, else ~/.local/share/loopcard. Root gets
// /var/lib/loopcard instead: the embedded PostgreSQL runs as the postgres
// user, who cannot enter /root.
func defaultDataDir() (string, error) {
	if os.Geteuid() == 0 {
		return "/var/lib/loopcard", nil
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "loopcard"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no home directory: set --data-dir or LOOPCARD_DATA_DIR")
	}
	return filepath.Join(home, ".local", "share", "loopcard"), nil
}

func getConfig(c *cli.Context) *config {
	return c.App.Metadata[configKey].(*config)
}

// printJSON writes v as indented JSON, the --json form of every command.
func printJSON(c *cli.Context, v any) error {
	enc := json.NewEncoder(c.App.Writer)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return "loopcard " + bi.Main.Version
	}
	return "loopcard (devel)"
}

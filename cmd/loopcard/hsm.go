package main

import (
	"fmt"

	"github.com/loopcard/loopcard/keys"
	"github.com/loopcard/loopcard/softhsm"
	"github.com/urfave/cli/v2"
)

// openHSM opens the HSM named by --hsm (LOOPCARD_HSM), or else the embedded
// SoftHSM2 token under the data directory, which is created on first use and
// announced once, when it is created. Audit records go to the CLI's logger.
func openHSM(c *cli.Context) (*keys.HSM, error) {
	cfg := getConfig(c)
	uri := cfg.HSMURI
	if uri == "" {
		u, created, err := softhsm.Embedded(cfg.DataDir)
		if err != nil {
			return nil, fmt.Errorf("embedded HSM: %w", err)
		}
		if created {
			fmt.Fprintf(c.App.ErrWriter, "loopcard: no --hsm given: created a SoftHSM2 token %q under %s (PIN in its 0600 file %s); use --hsm for a real HSM\n",
				softhsm.EmbeddedLabel, cfg.DataDir, "softhsm/pin")
		}
		uri = u
	}
	h, err := keys.Open(uri, keys.Options{Logger: logger(c)})
	if err != nil {
		return nil, err
	}
	return h, nil
}

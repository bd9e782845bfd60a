//go:build loopcard_upgradetest

package migrations

import (
	_ "embed"
	"fmt"
	"io/fs"
	"strings"
	"testing/fstest"
)

// upgradeTest is the extra migration of a binary built with the tag
// loopcard_upgradetest, for the test of an upgrade during an event
// (cmd/loopcard TestFormationCLI): `go build -tags loopcard_upgradetest`
// makes a new binary that differs from the shipped one by this migration.
//
//go:embed testdata/upgradetest.sql
var upgradeTest []byte

// upgradeTestName is the extra migration's name after its number.
const upgradeTestName = "upgrade_test"

// migrationsFS is what Up applies: the shipped migrations and, numbered
// after the last of them, testdata/upgradetest.sql.
func migrationsFS() (fs.FS, error) {
	entries, err := fs.ReadDir(FS, ".")
	if err != nil {
		return nil, err
	}
	out := fstest.MapFS{}
	last := 0
	for _, e := range entries {
		b, err := fs.ReadFile(FS, e.Name())
		if err != nil {
			return nil, err
		}
		out[e.Name()] = &fstest.MapFile{Data: b}
		var n int
		if _, err := fmt.Sscanf(e.Name(), "%03d_", &n); err == nil && strings.HasSuffix(e.Name(), ".sql") {
			last = max(last, n)
		}
	}
	out[fmt.Sprintf("%03d_%s.sql", last+1, upgradeTestName)] = &fstest.MapFile{Data: upgradeTest}
	return out, nil
}

//go:build !loopcard_upgradetest

package migrations

import "io/fs"

// migrationsFS is what Up applies: the shipped migrations.
func migrationsFS() (fs.FS, error) { return FS, nil }

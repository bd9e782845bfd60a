// Package migrations holds the numbered SQL migrations of the Loopcard
// database (tern format: NNN_name.sql, applied in order, each in its own
// transaction). Every table's primary key starts with org_id so that the
// schema can be sharded by organizer. New tables of any part of Loopcard are
// added here as the next numbered file, never by editing an applied one.
package migrations

import "embed"

// FS holds the migration files.
//
//go:embed *.sql
var FS embed.FS

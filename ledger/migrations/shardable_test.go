package migrations_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestShardable keeps the schema what docs/scale.md relies on to spread
// organizers over several formations, or one organizer over Citus: every
// primary key, unique constraint and unique index begins with org_id, and
// no table has a foreign key. It reads the committed schema.sql, which
// TestSchema keeps equal to the migrated database.
func TestShardable(t *testing.T) {
	b, err := os.ReadFile("schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	schema := string(b)
	keys := regexp.MustCompile(`(?m)(PRIMARY KEY|UNIQUE) \(([^)]*)\)|CREATE UNIQUE INDEX (\S+) ON \S+ USING \w+ \(([^)]*)\)`)
	n := 0
	for _, m := range keys.FindAllStringSubmatch(schema, -1) {
		cols := m[2] + m[4]
		n++
		if !strings.HasPrefix(cols, "org_id") {
			t.Errorf("%q does not begin with org_id: organizers could not live apart (docs/scale.md)", m[0])
		}
	}
	if n < 30 {
		t.Fatalf("found only %d keys in schema.sql: has its format changed?", n)
	}
	if strings.Contains(schema, "FOREIGN KEY") || strings.Contains(schema, "REFERENCES") {
		t.Error("schema.sql has a foreign key: Citus allows them only between co-located tables (docs/scale.md)")
	}
}

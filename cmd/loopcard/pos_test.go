package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPOSBadInput: the POS apps refuse an address beyond loopback without
// --allow-remote, and a menu file that breaks the contract, before they
// open anything.
func TestPOSBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "menu.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"products":[{"id":"Beer!","name":"Beer","price":350,"vat_rate_bp":2100,"category":"Drinks"}]}`), 0o600))
	tests := []struct {
		name string
		args []string
		msg  string
	}{
		{"terminal beyond loopback", []string{"terminal", "ui", "--state", dir, "--reader", "0", "--listen", "0.0.0.0:8470"},
			"--listen 0.0.0.0:8470 is beyond loopback"},
		{"store beyond loopback", []string{"store", "ui", "--state", dir, "--store", "s", "--reader", "0", "--listen", "192.168.1.2:8471"},
			"--listen 192.168.1.2:8471 is beyond loopback"},
		{"bad menu", []string{"terminal", "ui", "--state", dir, "--reader", "0", "--menu", bad}, "product 1: id must be 1 to 32 characters of a-z 0-9"},
		{"bad listen", []string{"terminal", "ui", "--state", dir, "--reader", "0", "--listen", "8470"}, "give HOST:PORT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"loopcard", "--data-dir", dir}, tt.args...)
			code := run(args, &stdout, &stderr)
			require.NotZero(t, code)
			require.Contains(t, stderr.String(), tt.msg)
		})
	}
}

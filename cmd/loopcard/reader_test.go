package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReaderServeBadInput(t *testing.T) {
	dir := t.TempDir()
	full := filepath.Join(dir, "full")
	require.NoError(t, os.MkdirAll(full, 0o755))
	keep := filepath.Join(full, "keep.txt")
	require.NoError(t, os.WriteFile(keep, []byte("mine"), 0o600))
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no port", []string{"--dir", dir}, 1, `Required flag "port" not set`},
		{"last port", []string{"--port", "65535", "--dir", dir}, 2, "reader: --port 65535: vpcd needs PORT and PORT+1"},
		{"stray argument", []string{"--port", "39000", "--dir", dir, "extra"}, 2, `reader: unexpected argument "extra"`},
		{"directory not empty", []string{"--port", "39000", "--dir", full}, 1, "is not empty: give a new or empty directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"loopcard", "--data-dir", dir, "reader", "serve"}, tt.args...)
			code := run(args, &stdout, &stderr)
			require.Equal(t, tt.code, code, "stderr: %s", stderr.String())
			require.Contains(t, stderr.String(), tt.msg)
		})
	}
	b, err := os.ReadFile(keep)
	require.NoError(t, err, "a directory that is not empty is left alone")
	require.Equal(t, "mine", string(b))
}

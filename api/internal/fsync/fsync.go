// Package fsync makes a rename durable for the clients' journals (the
// reference terminal's queue, the store client's journal and state).
package fsync

import "os"

// Dir fsyncs directory dir, so that a file just created or renamed in it
// survives a crash.
func Dir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

package vpcd

import (
	"fmt"
	"syscall"
)

// quickAck makes the kernel acknowledge the next segment at once. Linux
// clears the flag again on its own, so it is set before every read.
func (c *Conn) quickAck() error {
	rc, err := c.conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("vpcd: raw connection: %w", err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	}); err != nil {
		return fmt.Errorf("vpcd: raw connection: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("vpcd: set TCP_QUICKACK: %w", serr)
	}
	return nil
}

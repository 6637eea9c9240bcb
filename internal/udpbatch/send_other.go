//go:build !linux

package udpbatch

import "net/netip"

// sender on systems without sendmmsg: the queue is written one packet at a time, so the
// package builds and behaves the same (order, errors, stats) without the saving.
type sender struct{}

func (c *Conn) initSender(Options) error { return nil }

// canon leaves address checks to the standard library's write.
func (s *sender) canon(ap netip.AddrPort) (netip.AddrPort, error) { return ap, nil }

// sendQueued writes the queue (c.mu held); a packet that fails is counted and skipped.
func (c *Conn) sendQueued() error {
	failed := 0
	var firstErr error
	for i := range c.n {
		n, err := c.uc.WriteToUDPAddrPort(c.slot(i), c.dsts[i])
		c.stats.syscalls.Add(1)
		if err != nil {
			failed++
			if firstErr == nil {
				firstErr = err
			}
			c.stats.errors.Add(1)
			continue
		}
		c.stats.packets.Add(1)
		c.stats.bytes.Add(uint64(n))
	}
	if failed > 0 {
		return dropped(failed, c.n, firstErr)
	}
	return nil
}

// slot is queued packet i.
func (c *Conn) slot(i int) []byte {
	return c.buf[i*c.maxPacket : i*c.maxPacket+c.lens[i]]
}

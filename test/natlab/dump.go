package natlab

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// Dump describes the lab's state for a failure report: each host's addresses and sockets,
// each router's rules with packet counters and its conntrack table, each LAN's shapers and
// counters, and the tail of each coturn log. New logs it by itself when the test fails.
func (l *Lab) Dump() string {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return "lab " + l.id + " is closed"
	}
	hosts := append([]*Host(nil), l.hosts...)
	coturns := append([]*Coturn(nil), l.coturns...)
	lans := append([]*LAN(nil), l.lans...)
	l.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var b strings.Builder
	fmt.Fprintf(&b, "lab %s\n", l.id)
	for _, h := range hosts {
		fmt.Fprintf(&b, "== host %s\n", h)
		l.dumpCmd(ctx, &b, h.NS, "ip", "-4", "-br", "addr")
		l.dumpCmd(ctx, &b, h.NS, "ss", "-tuanp")
	}
	for _, h := range hosts {
		if r := h.Router; r != nil {
			fmt.Fprintf(&b, "== router %s (%s, WAN %s, %v NAT in front of %s)\n", r.Name, r.NS, r.IP, h.Kind, h.IP)
			l.dumpCmd(ctx, &b, r.NS, "iptables-save", "-c")
			l.dumpCmd(ctx, &b, r.NS, "conntrack", "-L")
		}
	}
	for _, n := range lans {
		n.dump(ctx, &b)
	}
	for _, c := range coturns {
		if c.Proc == nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(c.Log(), "\n"), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		fmt.Fprintf(&b, "== coturn in %s, last %d lines of its log\n%s\n", c.Host.NS, len(lines), strings.Join(lines, "\n"))
	}
	return b.String()
}

func (l *Lab) dumpCmd(ctx context.Context, b *strings.Builder, ns, name string, args ...string) {
	fmt.Fprintf(b, "-- %s %s\n", name, strings.Join(args, " "))
	path, err := lookTool(name)
	if err != nil {
		fmt.Fprintf(b, "(%v)\n", err)
		return
	}
	out, err := exec.CommandContext(ctx, l.ipPath, append([]string{"netns", "exec", ns, path}, args...)...).CombinedOutput()
	b.Write(bytes.TrimRight(out, "\n"))
	b.WriteByte('\n')
	if err != nil {
		fmt.Fprintf(b, "(%v)\n", err)
	}
}

package udpbatch

import (
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// The pacer's batch: 30 viewers × 40 packets of 1200 bytes, written viewer by viewer (a
// frame's packets together: what GSO can group), or interleaved (packet k for every viewer,
// then k+1: what it cannot).
const benchViewers, benchPackets, benchSize = 30, 40, 1200

// drains are loopback receivers that read and discard in goroutines, counting packets. With
// P2PCAST_BENCH_SINK set to an IPv4 address (scripts/measure-send-cost.sh: one on a dummy
// interface, which drops what it is given), the destinations are n ports there instead, with
// no receivers: what the sender's system call costs without loopback's delivery.
func drains(b *testing.B, n int) ([]netip.AddrPort, *atomic.Int64) {
	b.Helper()
	var got atomic.Int64
	aps := make([]netip.AddrPort, n)
	if sink := os.Getenv("P2PCAST_BENCH_SINK"); sink != "" {
		a, err := netip.ParseAddr(sink)
		if err != nil {
			b.Fatal(err)
		}
		for i := range aps {
			aps[i] = netip.AddrPortFrom(a, uint16(20000+i))
		}
		return aps, nil
	}
	for i := range aps {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			b.Fatal(err)
		}
		_ = c.SetReadBuffer(4 << 20)
		aps[i] = c.LocalAddr().(*net.UDPAddr).AddrPort()
		done := make(chan struct{})
		go func() {
			defer close(done)
			buf := make([]byte, 2048)
			for {
				if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
					return
				}
				got.Add(1)
			}
		}()
		b.Cleanup(func() {
			c.Close()
			<-done
		})
	}
	return aps, &got
}

// BenchmarkSend reports ns/packet for the pacer's batch sent one sendto per packet (raw: the
// bare *net.UDPConn; plain: through a Conn outside any window), with sendmmsg 64 per call
// (batched), and with sendmmsg and GSO (gso). ns/packet is wall time, which on loopback
// includes the receivers' reads competing for the same cores; cpu-ns/packet is the sending
// goroutine's own CPU time (Linux), which on loopback includes the kernel's delivery to the
// receiving socket, done in the sender's system call.
func BenchmarkSend(b *testing.B) {
	for _, order := range []string{"viewer-major", "interleaved"} {
		for _, mode := range []string{"raw", "plain", "batched", "gso"} {
			b.Run(order+"/"+mode, func(b *testing.B) {
				aps, got := drains(b, benchViewers)
				from := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
				if got == nil {
					from = &net.UDPAddr{} // the sink is not on loopback
				}
				uc, err := net.ListenUDP("udp4", from)
				if err != nil {
					b.Fatal(err)
				}
				c, err := New(uc, Options{NoGSO: mode != "gso"})
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				payload := make([]byte, benchSize)
				write := func(v int) {
					if _, err := c.WriteToAddrPort(payload, aps[v]); err != nil {
						b.Fatal(err)
					}
				}
				if mode == "raw" {
					write = func(v int) {
						if _, err := uc.WriteToUDPAddrPort(payload, aps[v]); err != nil {
							b.Fatal(err)
						}
					}
				}
				windows := mode == "batched" || mode == "gso"
				batch := func() {
					if windows {
						c.Hold()
					}
					if order == "viewer-major" {
						for v := range benchViewers {
							for range benchPackets {
								write(v)
							}
						}
					} else {
						for range benchPackets {
							for v := range benchViewers {
								write(v)
							}
						}
					}
					if windows {
						if err := c.Flush(); err != nil {
							b.Fatal(err)
						}
					}
				}
				runtime.LockOSThread() // for the thread's CPU time
				defer runtime.UnlockOSThread()
				batch()
				if got != nil {
					got.Store(0)
				}
				before := c.Stats()
				b.ResetTimer()
				start, cpu := time.Now(), threadCPU()
				n := 0
				for b.Loop() {
					batch()
					n++
				}
				elapsed, cpu := time.Since(start), threadCPU()-cpu
				b.StopTimer()
				st := c.Stats()
				packets := float64(n * benchViewers * benchPackets)
				b.ReportMetric(float64(elapsed.Nanoseconds())/packets, "ns/packet")
				if cpu > 0 {
					b.ReportMetric(float64(cpu.Nanoseconds())/packets, "cpu-ns/packet")
				}
				if mode != "raw" {
					b.ReportMetric(packets/float64(st.Syscalls-before.Syscalls), "packets/syscall")
				}
				if got != nil {
					b.ReportMetric(100*float64(got.Load())/packets, "%received")
				}
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

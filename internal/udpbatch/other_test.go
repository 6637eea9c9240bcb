//go:build !linux

package udpbatch

import "time"

// threadCPU is not measured here: benchmarks report wall time only.
func threadCPU() time.Duration { return 0 }

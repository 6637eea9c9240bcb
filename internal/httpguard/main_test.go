package httpguard

import (
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"
)

// TestMain fails the run if the tests left goroutines behind (a connection or server never
// closed). Goroutines end a little after what they serve closes, so it waits up to 5 s.
func TestMain(m *testing.M) {
	before := runtime.NumGoroutine()
	code := m.Run()
	deadline := time.Now().Add(5 * time.Second)
	for code == 0 && runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			fmt.Fprintf(os.Stderr, "%d goroutines left running (%d before):\n%s\n",
				runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
			code = 1
		}
		time.Sleep(20 * time.Millisecond)
	}
	os.Exit(code)
}

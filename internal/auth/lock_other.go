//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package auth

import "sync"

// Without flock, writers in one process still exclude each other; writers
// in separate processes may race, which only matters if two enrolments
// run at the same moment.
var processLock sync.Mutex

func lockFileExclusive(string) (unlock func(), err error) {
	processLock.Lock()
	return processLock.Unlock, nil
}

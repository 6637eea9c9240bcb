package turnserver

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// userName is the name in a TURN REST username, `<expiry>:<name>`: the quotas count by it, so
// a client cannot reset them with a fresh credential of the same name.
func userName(userID string) string {
	if _, name, ok := strings.Cut(userID, ":"); ok {
		return name
	}
	return userID
}

// users holds the quota state of every user with a live relay socket; a user is forgotten when
// its last socket closes.
type users struct {
	max         int
	rate, burst float64 // bytes/s and bytes, of each direction
	now         func() time.Time
	onRelease   func(name string)

	mu sync.Mutex
	m  map[string]*user
}

type user struct {
	name         string
	allocs, refs int // guarded by users.mu: allocations, and sockets of any kind
	up, down     bucket
}

// burstTime is how much of the rate may pass at once: enough for a keyframe to several viewers.
const burstTime = 250 * time.Millisecond

// minBurst keeps a dozen full-size packets passing at once even at very low rates.
const minBurst = 16 << 10

func newUsers(maxAllocs int, bitsPerSecond int64, now func() time.Time, onRelease func(string)) *users {
	rate := float64(bitsPerSecond) / 8
	return &users{
		max: maxAllocs, rate: rate, burst: max(rate*burstTime.Seconds(), minBurst),
		now: now, onRelease: onRelease, m: map[string]*user{},
	}
}

// total is the number of live allocations of every user.
func (us *users) total() int {
	us.mu.Lock()
	defer us.mu.Unlock()
	n := 0
	for _, u := range us.m {
		n += u.allocs
	}
	return n
}

// allocations is the number of live allocations of the user named in userID.
func (us *users) allocations(userID string) int {
	us.mu.Lock()
	defer us.mu.Unlock()
	if u := us.m[userName(userID)]; u != nil {
		return u.allocs
	}
	return 0
}

// acquire counts a socket of the user named in userID, an allocation when alloc is set
// (refused past the quota).
func (us *users) acquire(userID string, alloc bool) (*user, error) {
	name := userName(userID)
	us.mu.Lock()
	defer us.mu.Unlock()
	u := us.m[name]
	if alloc && u != nil && u.allocs >= us.max {
		return nil, fmt.Errorf("%w: %d allocations", ErrAllocationQuota, u.allocs)
	}
	if u == nil {
		now := us.now()
		u = &user{
			name: name,
			up:   bucket{rate: us.rate, burst: us.burst, tokens: us.burst, last: now, now: us.now},
			down: bucket{rate: us.rate, burst: us.burst, tokens: us.burst, last: now, now: us.now},
		}
		us.m[name] = u
	}
	u.refs++
	if alloc {
		u.allocs++
	}
	return u, nil
}

// ref counts one more socket of u, which already has one.
func (us *users) ref(u *user) {
	us.mu.Lock()
	u.refs++
	us.mu.Unlock()
}

// release undoes acquire and ref.
func (us *users) release(u *user, alloc bool) {
	us.mu.Lock()
	u.refs--
	if alloc {
		u.allocs--
	}
	if u.refs == 0 && us.m[u.name] == u {
		delete(us.m, u.name)
	}
	us.mu.Unlock()
	if alloc && us.onRelease != nil {
		us.onRelease(u.name)
	}
}

// bucket is a token bucket of bytes.
type bucket struct {
	rate, burst float64
	now         func() time.Time

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func (b *bucket) refill() {
	now := b.now()
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
}

// take takes n bytes' worth, or takes nothing and reports false: a UDP packet over the limit is
// dropped, since queueing it would only add delay to real-time media.
func (b *bucket) take(n int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill()
	if b.tokens < float64(n) {
		return false
	}
	b.tokens -= float64(n)
	return true
}

// reserve takes n bytes' worth even into debt and returns how long the caller must pause to pay
// it back: a TCP stream cannot lose bytes, so it is slowed instead.
func (b *bucket) reserve(n int) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill()
	b.tokens -= float64(n)
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}

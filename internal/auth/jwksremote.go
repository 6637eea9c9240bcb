package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// RemoteJWKS is an external issuer's key set, fetched from its JWKS URL and
// cached: the hub accepts the tokens an application's backend signs with a
// stock JWT library. It is a KeySource (the keys sign for Issuer).
//
// The set is fetched on first use, again when older than MaxAge, and at
// once when a token names a kid it lacks (a rotation at the issuer); all of
// these at most once per MinRefetch, so tokens with made-up kids cannot
// make the hub hammer the issuer. A failed fetch keeps the last good set.
type RemoteJWKS struct {
	Issuer string
	URL    string
	// Client fetches the set (its Timeout bounds a fetch); NewRemoteJWKS
	// sets one that follows redirects only to URLs CheckJWKSURL accepts.
	Client *http.Client
	// MaxAge and MinRefetch: defaults 15 minutes and 30 s.
	MaxAge, MinRefetch time.Duration
	// Now is the clock (default time.Now); OnError is told of failed fetches.
	Now     func() time.Time
	OnError func(error)

	fetch   sync.Mutex // one fetch at a time
	mu      sync.Mutex // guards what follows
	set     KeySet
	fetched time.Time // of set
	tried   time.Time // last attempt, good or bad
	gen     int       // attempts so far
}

// jwksFetchTimeout bounds one fetch, connection to last byte.
const jwksFetchTimeout = 10 * time.Second

// CheckJWKSURL accepts an https URL, or http to a loopback host (a backend on
// the same machine); anything else would let a network attacker swap keys.
func CheckJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("JWKS URL %s: %v", quoteShort(raw), err)
	}
	if u.User != nil || u.Host == "" || u.Fragment != "" {
		return fmt.Errorf("JWKS URL %s: want https://host/path, no user or fragment", quoteShort(raw))
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); strings.EqualFold(host, "localhost") || (ip != nil && ip.IsLoopback()) {
			return nil
		}
		return fmt.Errorf("JWKS URL %s: http only to a loopback address; use https", quoteShort(raw))
	}
	return fmt.Errorf("JWKS URL %s: want https", quoteShort(raw))
}

// NewRemoteJWKS checks issuer and jwksURL and returns the cache, empty until
// its first fetch.
func NewRemoteJWKS(issuer, jwksURL string) (*RemoteJWKS, error) {
	if err := CheckIssuer(issuer); err != nil {
		return nil, err
	}
	if err := CheckJWKSURL(jwksURL); err != nil {
		return nil, err
	}
	client := &http.Client{
		Timeout: jwksFetchTimeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("too many redirects")
			}
			return CheckJWKSURL(req.URL.String())
		},
	}
	return &RemoteJWKS{Issuer: issuer, URL: jwksURL, Client: client}, nil
}

// CheckIssuer accepts an external issuer's name (its tokens' iss): 1-256
// printable characters, and not LocalIssuer, which names p2pcast's own keys.
func CheckIssuer(iss string) error {
	if iss == "" || !printable(iss, maxIssuerLen) {
		return fmt.Errorf("issuer %s: want 1-%d printable characters", quoteShort(iss), maxIssuerLen)
	}
	if iss == LocalIssuer {
		return fmt.Errorf("issuer %q is p2pcast's own: an external issuer needs a name of its own (e.g. its URL)", iss)
	}
	return nil
}

func (r *RemoteJWKS) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *RemoteJWKS) durations() (maxAge, minRefetch time.Duration) {
	maxAge, minRefetch = r.MaxAge, r.MinRefetch
	if maxAge <= 0 {
		maxAge = 15 * time.Minute
	}
	if minRefetch <= 0 {
		minRefetch = 30 * time.Second
	}
	return maxAge, minRefetch
}

// TokenKeys returns the issuer's keys named kid, fetching the set first if
// it is missing, stale, or lacks kid (rate-limited).
func (r *RemoteJWKS) TokenKeys(kid string) ([]VerifyKey, error) {
	maxAge, minRefetch := r.durations()
	r.mu.Lock()
	set, fetched, tried := r.set, r.fetched, r.tried
	r.mu.Unlock()
	found, _ := set.TokenKeys(kid)
	now := r.now()
	stale := set == nil || now.Sub(fetched) > maxAge
	if (stale || len(found) == 0) && now.Sub(tried) >= minRefetch {
		if err := r.Refresh(context.Background()); err != nil && r.OnError != nil {
			r.OnError(err)
		}
		r.mu.Lock()
		set = r.set
		r.mu.Unlock()
		found, _ = set.TokenKeys(kid)
	} else if set == nil {
		// Never fetched, and a fetch just started or failed: wait for one in flight.
		r.waitFetch()
		r.mu.Lock()
		set = r.set
		r.mu.Unlock()
		found, _ = set.TokenKeys(kid)
	}
	if len(found) == 0 && set == nil {
		return nil, fmt.Errorf("the JWK set of issuer %s has not been fetched yet", quoteShort(r.Issuer))
	}
	return found, nil
}

// waitFetch returns once no fetch is running.
func (r *RemoteJWKS) waitFetch() {
	r.fetch.Lock()
	defer r.fetch.Unlock()
}

// Refresh fetches the set now (unless another fetch just ran): on success it
// replaces the cached one, on failure the cached one stays.
func (r *RemoteJWKS) Refresh(ctx context.Context) error {
	r.mu.Lock()
	gen := r.gen
	r.mu.Unlock()
	r.fetch.Lock()
	defer r.fetch.Unlock()
	r.mu.Lock()
	if r.gen != gen {
		r.mu.Unlock()
		return nil // a fetch ran while this one waited: its result stands
	}
	r.gen++
	r.tried = r.now()
	r.mu.Unlock()
	set, err := r.get(ctx)
	if err != nil {
		return fmt.Errorf("auth: issuer %s: fetching %s: %w", quoteShort(r.Issuer), r.URL, err)
	}
	r.mu.Lock()
	r.set, r.fetched = set, r.now()
	r.mu.Unlock()
	return nil
}

func (r *RemoteJWKS) get(ctx context.Context) (KeySet, error) {
	ctx, cancel := context.WithTimeout(ctx, jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.URL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := r.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxJWKSSize+1))
	if err != nil {
		return nil, err
	}
	return ParseJWKS(body, r.Issuer)
}

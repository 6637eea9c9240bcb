package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/p2pcast/p2pcast/internal/auth"
)

// TokenIssuer is an external issuer whose viewer tokens the hub accepts: an application's
// backend that signs them (EdDSA) with a key it publishes as a JWK Set at JWKSURL.
type TokenIssuer struct {
	// Issuer is the iss its tokens carry (not "p2pcast", which names the hub's own keys).
	Issuer string
	// JWKSURL is where its public keys are: https, or http to a loopback address.
	JWKSURL string
}

// validate checks an issuer's settings; the zero TokenIssuer (none) is valid.
func (t TokenIssuer) validate() error {
	if t == (TokenIssuer{}) {
		return nil
	}
	if t.Issuer == "" || t.JWKSURL == "" {
		return errors.New("--token-issuer and --token-issuer-jwks go together")
	}
	if err := auth.CheckIssuer(t.Issuer); err != nil {
		return fmt.Errorf("--token-issuer: %v", err)
	}
	if err := auth.CheckJWKSURL(t.JWKSURL); err != nil {
		return fmt.Errorf("--token-issuer-jwks: %v", err)
	}
	return nil
}

// newTokenKeys is the key source the hub verifies viewer tokens with: its store's keys
// (token-keys.json, reread when it changes: every hub on the data directory shares them) and
// the external issuer's, fetched now in the background so that a bad URL shows in the log at
// start.
func newTokenKeys(cfg Config, log *slog.Logger) (auth.KeySource, error) {
	if cfg.TokenIssuer == (TokenIssuer{}) {
		return cfg.Store, nil
	}
	r, err := auth.NewRemoteJWKS(cfg.TokenIssuer.Issuer, cfg.TokenIssuer.JWKSURL)
	if err != nil {
		return nil, err
	}
	r.OnError = func(err error) { log.Warn("token issuer's keys", "err", err) }
	go func() {
		if err := r.Refresh(context.Background()); err != nil {
			r.OnError(err)
		} else {
			log.Info("token issuer's keys fetched", "issuer", r.Issuer, "url", r.URL)
		}
	}()
	return auth.KeySources{cfg.Store, r}, nil
}

// verifyToken is the hub's check of a viewer token (the device's offline check is the same
// auth.Verify): signature by a known key, the claim rules, the clock. Revocation and grants
// are the caller's.
func (s *Server) verifyToken(token string) (auth.Claims, error) {
	return auth.Verify(s.tokenKeys, token, s.cfg.Now())
}

// looksLikeToken tells a token from a token id where either may be given (revocation).
func looksLikeToken(s string) bool {
	return strings.HasPrefix(s, auth.LegacyTokenPrefix) || strings.Count(s, ".") == 2
}

// jwksPath is where the hub publishes its token keys (RFC 8414's well-known location for
// jwks_uri is the issuer's choice; this is the usual one).
const jwksPath = "/.well-known/jwks.json"

func (s *Server) registerTokens(mux *http.ServeMux) {
	mux.HandleFunc("GET "+jwksPath, s.serveJWKS)
}

// serveJWKS publishes the public keys that verify the hub's tokens, as a JWK Set: an
// application's backend, another service or a device checks the hub's tokens with it. Public
// material: anyone may read it, from any origin.
func (s *Server) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	ks, err := s.cfg.Store.VerifyKeys(s.cfg.Now())
	if err != nil {
		s.log.Warn("token keys", "err", err)
		http.Error(w, "token keys unreadable", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	_, _ = w.Write(ks.JWKS())
}

package auth

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// TURN credentials follow the TURN REST API (draft-uberti-behave-turn-rest-00)
// as coturn implements it for use-auth-secret / static-auth-secret:
//
//	username = "<unix expiry>:<name>"
//	password = base64(HMAC-SHA1(secret, username))
//
// The secret is used exactly as given: for coturn, static-auth-secret must
// be the same bytes (Store.TURNSecret returns text suitable for that line),
// and pion/turn's LongTermTURNRESTAuthHandler takes it as a string.
// SHA-1 is what the scheme specifies; as an HMAC it is not the weak point.

// maxTURNUsername is the STUN USERNAME limit (RFC 8489 section 14.3).
const maxTURNUsername = 513

// TURNCredential makes a TURN username and password valid until now+ttl
// (whole seconds, rounded down). name labels the user in TURN logs; an
// empty name gives the bare "<expiry>" form, which coturn also accepts.
// Keep name short: STUN caps the whole username at 513 bytes, and
// VerifyTURN refuses longer ones.
func TURNCredential(secret []byte, name string, ttl time.Duration, now time.Time) (username, password string) {
	username = strconv.FormatInt(now.Add(ttl).Unix(), 10)
	if name != "" {
		username += ":" + name
	}
	return username, turnPassword(secret, username)
}

func turnPassword(secret []byte, username string) string {
	m := hmac.New(sha1.New, secret)
	m.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// VerifyTURN is the server half: it checks that username is a well-formed,
// unexpired TURN REST username and returns the password it must have been
// issued with. TURN never sends the password itself; the server derives
// the long-term key from it, so with pion/turn:
//
//	AuthHandler: func(ra *turn.RequestAttributes) (string, []byte, bool) {
//		pw, err := auth.VerifyTURN(secret, ra.Username, time.Now())
//		if err != nil {
//			return "", nil, false
//		}
//		return ra.Username, turn.GenerateAuthKey(ra.Username, ra.Realm, pw), true
//	}
//
// Like coturn, a credential is good through its expiry second: ErrExpired
// only once now.Unix() > expiry. An empty secret is refused, since anyone
// could compute credentials for it.
func VerifyTURN(secret []byte, username string, now time.Time) (password string, err error) {
	if len(secret) == 0 {
		return "", fmt.Errorf("auth: empty TURN secret")
	}
	if len(username) > maxTURNUsername {
		return "", fmt.Errorf("%w TURN username: %d bytes, max %d", ErrMalformed, len(username), maxTURNUsername)
	}
	ts, _, _ := strings.Cut(username, ":")
	if ts == "" || strings.ContainsFunc(ts, func(r rune) bool { return r < '0' || r > '9' }) {
		return "", fmt.Errorf("%w TURN username: want <unix expiry>:<name>", ErrMalformed)
	}
	exp, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return "", fmt.Errorf("%w TURN username: expiry out of range", ErrMalformed)
	}
	if now.Unix() > exp {
		return "", fmt.Errorf("%w: TURN credential expired at %v", ErrExpired, time.Unix(exp, 0).UTC())
	}
	return turnPassword(secret, username), nil
}

package rtsp

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
)

// challenge is one WWW-Authenticate challenge: a scheme and its parameters (names lower-case).
type challenge struct {
	scheme string // "basic", "digest"
	params map[string]string
}

const maxChallenges = 8

// parseChallenges reads the challenges of WWW-Authenticate header values (RFC 7235 2.1): a
// scheme, then name=value pairs (values quoted or not) separated by commas; a token without
// '=' starts the next challenge.
func parseChallenges(values []string) []challenge {
	var out []challenge
	for _, v := range values {
		s := v
		for len(out) < maxChallenges {
			s = strings.TrimLeft(s, " \t,")
			if s == "" {
				break
			}
			var scheme string
			scheme, s = token(s)
			if scheme == "" {
				break
			}
			c := challenge{scheme: strings.ToLower(scheme), params: map[string]string{}}
			for {
				s = strings.TrimLeft(s, " \t,")
				name, after := token(s)
				after = strings.TrimLeft(after, " \t")
				if name == "" || !strings.HasPrefix(after, "=") {
					break // the next challenge, or junk
				}
				var value string
				value, s = paramValue(strings.TrimLeft(after[1:], " \t"))
				if len(c.params) < 32 {
					c.params[strings.ToLower(name)] = value
				}
			}
			out = append(out, c)
		}
	}
	return out
}

func isTokenChar(c byte) bool {
	return c > ' ' && c < 0x7f && !strings.ContainsRune("()<>@,;:\\\"/[]?={} \t", rune(c))
}

// token returns the leading token of s and the rest.
func token(s string) (string, string) {
	i := 0
	for i < len(s) && isTokenChar(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

// paramValue reads a quoted string (with backslash escapes) or a token.
func paramValue(s string) (string, string) {
	if !strings.HasPrefix(s, `"`) {
		end := strings.IndexAny(s, ", \t")
		if end < 0 {
			return s, ""
		}
		return s[:end], s[end:]
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		case '"':
			return b.String(), s[i+1:]
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), "" // unterminated: take what there is
}

// authenticator answers the camera's challenge on every request once a 401 has chosen a
// scheme.
type authenticator struct {
	user, password string
	scheme         string // "" until a challenge was accepted
	realm, nonce   string
	opaque         string
	algorithm      string // as the camera spelled it ("" means MD5)
	qop            bool   // qop=auth
	nc             int
	cnonce         func() string
}

// digestAlgorithms in order of preference (RFC 7616 3.7: the client uses the strongest it
// knows); "" is RFC 2069/2617's MD5 without the parameter.
var digestAlgorithms = []string{"sha-256", "sha-256-sess", "md5", "md5-sess", ""}

// accept picks the best challenge this client can answer; false if there is none.
func (a *authenticator) accept(cs []challenge) bool {
	for _, alg := range digestAlgorithms {
		for _, c := range cs {
			if c.scheme != "digest" || strings.ToLower(c.params["algorithm"]) != alg || c.params["nonce"] == "" {
				continue
			}
			qop := false
			for q := range strings.SplitSeq(c.params["qop"], ",") {
				if strings.EqualFold(strings.TrimSpace(q), "auth") {
					qop = true
				}
			}
			if c.params["qop"] != "" && !qop {
				continue // only auth-int offered: it would need the body's hash
			}
			a.scheme, a.realm, a.nonce, a.opaque = "digest", c.params["realm"], c.params["nonce"], c.params["opaque"]
			a.algorithm, a.qop, a.nc = c.params["algorithm"], qop, 0
			return true
		}
	}
	for _, c := range cs {
		if c.scheme == "basic" {
			a.scheme, a.realm = "basic", c.params["realm"]
			return true
		}
	}
	return false
}

// schemes lists what the camera offered, for an error that says why nothing was accepted.
func schemes(cs []challenge) string {
	var names []string
	for _, c := range cs {
		n := c.scheme
		if alg := c.params["algorithm"]; alg != "" {
			n += " " + alg
		}
		if q := c.params["qop"]; q != "" {
			n += " qop=" + q
		}
		names = append(names, n)
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// header is the Authorization value for a request, "" before a challenge was accepted.
func (a *authenticator) header(method, uri string) string {
	switch a.scheme {
	case "basic":
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(a.user+":"+a.password))
	case "digest":
		a.nc++
		nc := fmt.Sprintf("%08x", a.nc)
		cnonce, qop := "", ""
		if a.qop {
			qop = "auth"
		}
		if a.qop || strings.HasSuffix(strings.ToLower(a.algorithm), "-sess") {
			if a.cnonce != nil {
				cnonce = a.cnonce()
			} else {
				cnonce = randomHex(8)
			}
		}
		resp := digestResponse(a.algorithm, a.user, a.realm, a.password, method, uri, a.nonce, nc, cnonce, qop)
		var b strings.Builder
		fmt.Fprintf(&b, `Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s"`,
			quote(a.user), quote(a.realm), quote(a.nonce), quote(uri), resp)
		if a.algorithm != "" {
			b.WriteString(", algorithm=" + a.algorithm)
		}
		if a.opaque != "" {
			fmt.Fprintf(&b, `, opaque="%s"`, quote(a.opaque))
		}
		if a.qop {
			fmt.Fprintf(&b, `, qop=auth, nc=%s`, nc)
		}
		if cnonce != "" {
			fmt.Fprintf(&b, `, cnonce="%s"`, cnonce)
		}
		return b.String()
	}
	return ""
}

func quote(s string) string { return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand panics rather than return an error)
	return hex.EncodeToString(b)
}

// digestResponse computes a Digest response (RFC 2617 3.2.2, RFC 7616 3.4.1). algorithm is
// the challenge's ("", MD5, MD5-sess, SHA-256, SHA-256-sess); qop is "" or "auth".
func digestResponse(algorithm, user, realm, password, method, uri, nonce, nc, cnonce, qop string) string {
	alg := strings.ToLower(algorithm)
	var h func() hash.Hash = md5.New
	if strings.HasPrefix(alg, "sha-256") {
		h = sha256.New
	}
	sum := func(s string) string {
		x := h()
		x.Write([]byte(s))
		return hex.EncodeToString(x.Sum(nil))
	}
	ha1 := sum(user + ":" + realm + ":" + password)
	if strings.HasSuffix(alg, "-sess") {
		ha1 = sum(ha1 + ":" + nonce + ":" + cnonce)
	}
	ha2 := sum(method + ":" + uri)
	if qop == "" {
		return sum(ha1 + ":" + nonce + ":" + ha2)
	}
	return sum(ha1 + ":" + nonce + ":" + nc + ":" + cnonce + ":" + qop + ":" + ha2)
}

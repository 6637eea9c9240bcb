package httpguard

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })

func TestHosts(t *testing.T) {
	h := Hosts([]string{"cam.example.org", "*.lan.example", "Mixed.Case.example."}, okHandler)
	tests := []struct {
		host string
		want int
	}{
		{"evil.example", http.StatusForbidden},
		{"evil.example:8080", http.StatusForbidden},
		{"", http.StatusForbidden},
		{"localhost", http.StatusOK},
		{"localhost:8080", http.StatusOK},
		{"LOCALHOST.:8080", http.StatusOK},
		{"device.localhost:8080", http.StatusOK},
		{"localhost.evil.example", http.StatusForbidden},
		{"127.0.0.1:8080", http.StatusOK},
		{"192.168.1.20", http.StatusOK},
		{"[::1]:8080", http.StatusOK},
		{"[2001:db8::1]", http.StatusOK},
		{"::1", http.StatusForbidden},                 // an IPv6 literal must be bracketed
		{"[fe80::1%25eth0]:80", http.StatusForbidden}, // zones are not for Host
		{"[evil.example]:80", http.StatusForbidden},
		{"0177.0.0.1", http.StatusForbidden}, // not an IP literal: a name nobody allowed
		{"cam.example.org:8443", http.StatusOK},
		{"CAM.example.org", http.StatusOK},
		{"x.cam.example.org", http.StatusForbidden},
		{"mixed.case.example", http.StatusOK},
		{"a.lan.example", http.StatusOK},
		{"a.b.lan.example:80", http.StatusOK},
		{"lan.example", http.StatusForbidden},
		{"evillan.example", http.StatusForbidden},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		r.Host = tt.host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tt.want {
			t.Errorf("Host %q: %d, want %d", tt.host, w.Code, tt.want)
		}
		if w.Code == http.StatusForbidden && !strings.Contains(w.Body.String(), "--allow-host") {
			t.Errorf("Host %q: reason %q does not name --allow-host", tt.host, w.Body.String())
		}
	}
}

func TestCORS(t *testing.T) {
	const methods, headers, expose = "POST, PATCH, DELETE, OPTIONS", "Content-Type, If-Match, Authorization", "Location, ETag"
	listed := CORS([]string{"https://Viewer.example/", "http://localhost:3000"}, methods, headers, expose, okHandler)
	anyone := CORS([]string{"*"}, methods, headers, expose, okHandler)
	tests := []struct {
		name      string
		h         http.Handler
		method    string
		origin    string
		preflight bool
		code      int
		allow     string // Access-Control-Allow-Origin, "" for none
	}{
		{"no origin", listed, "POST", "", false, 200, ""},
		{"foreign origin", listed, "POST", "https://evil.example", false, 200, ""},
		{"listed origin reflected", listed, "POST", "https://viewer.example", false, 200, "https://viewer.example"},
		{"listed origin with port", listed, "DELETE", "http://localhost:3000", false, 200, "http://localhost:3000"},
		{"port must match", listed, "POST", "http://localhost:3001", false, 200, ""},
		{"scheme must match", listed, "POST", "http://viewer.example", false, 200, ""},
		{"null origin", listed, "POST", "null", false, 200, ""},
		{"listed preflight", listed, "OPTIONS", "https://viewer.example", true, 204, "https://viewer.example"},
		{"foreign preflight", listed, "OPTIONS", "https://evil.example", true, 403, ""},
		{"plain OPTIONS goes through", listed, "OPTIONS", "https://evil.example", false, 200, ""},
		{"wildcard listed", anyone, "POST", "https://evil.example", false, 200, "https://evil.example"},
		{"wildcard preflight", anyone, "OPTIONS", "https://evil.example", true, 204, "https://evil.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "/whep", nil)
			if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			if tt.preflight {
				r.Header.Set("Access-Control-Request-Method", "POST")
				r.Header.Set("Access-Control-Request-Headers", "content-type")
			}
			w := httptest.NewRecorder()
			tt.h.ServeHTTP(w, r)
			got := w.Result().Header
			if w.Code != tt.code || got.Get("Access-Control-Allow-Origin") != tt.allow {
				t.Fatalf("%d, Allow-Origin %q; want %d, %q", w.Code, got.Get("Access-Control-Allow-Origin"), tt.code, tt.allow)
			}
			if !strings.Contains(strings.Join(got.Values("Vary"), ","), "Origin") {
				t.Errorf("no Vary: Origin: %v", got)
			}
			if tt.allow == "" {
				for k := range got {
					if strings.HasPrefix(k, "Access-Control-") {
						t.Errorf("CORS header %s given to %q", k, tt.origin)
					}
				}
				return
			}
			if tt.preflight {
				if got.Get("Access-Control-Allow-Methods") != methods || got.Get("Access-Control-Allow-Headers") != headers {
					t.Errorf("preflight headers: %v", got)
				}
			} else if got.Get("Access-Control-Expose-Headers") != expose {
				t.Errorf("expose headers: %v", got)
			}
		})
	}
}

func TestCheckOrigin(t *testing.T) {
	check := CheckOrigin([]string{"https://viewer.example"})
	tests := []struct {
		host, origin string
		want         bool
	}{
		{"localhost:8080", "", true},
		{"localhost:8080", "http://localhost:8080", true},
		{"LOCALHOST:8080", "http://localhost:8080", true},
		{"localhost:8080", "http://localhost:9090", false},
		{"localhost:8080", "https://evil.example", false},
		{"localhost:8080", "https://viewer.example", true},
		{"localhost:8080", "https://VIEWER.example", true},
		{"localhost:8080", "http://viewer.example", false},
		{"localhost:8080", "null", false},
		{"localhost:8080", "::garbage", false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/ws", nil)
		r.Host = tt.host
		if tt.origin != "" {
			r.Header.Set("Origin", tt.origin)
		}
		if got := check(r); got != tt.want {
			t.Errorf("Host %q, Origin %q: %v, want %v", tt.host, tt.origin, got, tt.want)
		}
	}
}

func TestHeaders(t *testing.T) {
	w := httptest.NewRecorder()
	Headers(http.NotFoundHandler()).ServeHTTP(w, httptest.NewRequest("GET", "/nothing", nil))
	h := w.Result().Header
	for k, want := range map[string]string{
		"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
			"media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'; object-src 'none'",
		"X-Frame-Options":        "DENY",
		"X-Content-Type-Options": "nosniff",
		"Referrer-Policy":        "no-referrer",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
}

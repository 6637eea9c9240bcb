//go:build e2e

package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/p2pcast/p2pcast/internal/browser"
	"github.com/p2pcast/p2pcast/internal/httpguard"
	"github.com/p2pcast/p2pcast/web"
)

// recordViolations runs before any of the page's scripts: it keeps every CSP violation the
// page reports (shadow roots' included: the event is composed).
const recordViolations = `window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) =>
  window.__csp.push(e.effectiveDirective + ' blocked ' + (e.blockedURI || 'inline') + ' at ' + e.sourceFile + ':' + e.lineNumber), true);`

// TestPagesRunUnderCSP loads every page of web.Files, served with httpguard.Headers' policy, in
// Chromium and checks that nothing is blocked and that each page's styles and scripts ran.
func TestPagesRunUnderCSP(t *testing.T) {
	srv := httptest.NewServer(httpguard.Headers(http.FileServerFS(web.Files)))
	defer srv.Close()
	b := newBrowser(t)

	// Each check holds when the page's stylesheet and scripts have run.
	const player = `(() => {
	  const p = document.querySelector('p2pcast-player');
	  if (!customElements.get('p2pcast-player') || !p || !p.shadowRoot) return false;
	  return getComputedStyle(p).position === 'fixed' &&
	    getComputedStyle(p.shadowRoot.querySelector('.hud')).position === 'absolute';
	})()`
	const diag = `typeof window.p2pcast?.latency === 'function'`
	const hubList = `getComputedStyle(document.body).backgroundColor === 'rgb(17, 17, 17)' &&
	  !document.querySelector('main').hidden && !document.getElementById('token-form').hidden`
	tests := []struct{ path, ready string }{
		{"/", player},
		{"/?signal=whep", player},
		{"/?diag=1", player + " && " + diag},
		{"/hub.html", hubList},
		{"/hub.html?device=cam1", player + ` && document.body.classList.contains('playing')`},
		{"/hub.html?device=cam1&diag=1", player + " && " + diag},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			tab, err := b.NewPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tab.Close()
			var mu sync.Mutex
			var console []string
			tab.Console(func(m string) {
				mu.Lock()
				defer mu.Unlock()
				console = append(console, m)
			})
			addScript := func(c context.Context, tg *chromedp.Target) (chromedp.Void, error) {
				_, err := cdp.Call(c, tg, page.AddScriptToEvaluateOnNewDocument,
					page.AddScriptToEvaluateOnNewDocumentParams{Source: recordViolations})
				return chromedp.Void{}, err
			}
			if err := chromedp.Do(tab.Context(), addScript); err != nil {
				t.Fatal(err)
			}
			if err := tab.Navigate(ctx, srv.URL+tt.path); err != nil {
				t.Fatal(err)
			}
			// A blocked stylesheet or script shows as a page that never gets ready: wait a
			// while, then report both that and the violations.
			wait, stop := context.WithTimeout(ctx, 5*time.Second)
			defer stop()
			ready := false
			for !ready && wait.Err() == nil {
				ready, err = browser.Eval[bool](wait, tab, tt.ready)
				if err != nil && wait.Err() == nil {
					t.Fatal(err)
				}
				if !ready {
					select {
					case <-wait.Done():
					case <-time.After(100 * time.Millisecond):
					}
				}
			}
			violations, err := browser.Eval[[]string](ctx, tab, "window.__csp")
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			for _, m := range console {
				if strings.Contains(m, "Content Security Policy") {
					violations = append(violations, m)
				}
			}
			mu.Unlock()
			for _, v := range violations {
				t.Errorf("CSP violation: %s", v)
			}
			if !ready {
				t.Errorf("page never got ready (%s)", tt.ready)
			}
		})
	}
}

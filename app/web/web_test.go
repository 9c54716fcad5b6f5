package web_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/app/auth"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/app/web"
	"github.com/ferryhq/ferry/internal/ferry"
)

func TestAuthTemplatesParse(t *testing.T) {
	ts, err := web.Templates()
	if err != nil {
		t.Fatal(err)
	}
	for _, page := range []string{"login", "signup", "account", "tokens", "error"} {
		if ts[page] == nil {
			t.Errorf("no page %q", page)
		}
	}
}

func render(t *testing.T, ctx context.Context, page string, data any, cookies ...*http.Cookie) *http.Response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	web.Render(rec, req, http.StatusTeapot, page, data)
	return rec.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRenderFillsThePage(t *testing.T) {
	u := &store.User{ID: 7, Email: "ada@example.com"}
	ctx := auth.WithUser(context.Background(), u, "tok-123")

	// Data embedding Page.
	res := render(t, ctx, "account", &struct {
		web.Page
		HasPassword   bool
		GitHubEnabled bool
		Invites       bool
		InviteLink    string
	}{Page: web.Page{Title: "Account"}, HasPassword: true})
	html := body(t, res)
	if res.StatusCode != http.StatusTeapot || res.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("status %d, type %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	for _, want := range []string{`<a href="/account">ada@example.com</a>`, `name="csrf_token" value="tok-123"`, `<title>Account · Ferry</title>`, `Current password`} {
		if !strings.Contains(html, want) {
			t.Errorf("no %q in\n%s", want, html)
		}
	}
	if res.Header.Get("Cache-Control") != "no-store" || res.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("headers %v", res.Header)
	}

	// A map, as app/auth passes, and the flash cookie, shown once and cleared.
	res = render(t, context.Background(), "login", map[string]any{"Next": "/x"},
		&http.Cookie{Name: auth.FlashCookie, Value: url.QueryEscape("You are logged out.")})
	html = body(t, res)
	if !strings.Contains(html, `<p class="flash" role="status">You are logged out.</p>`) || !strings.Contains(html, `href="/signup"`) {
		t.Fatalf("flash or anonymous nav missing:\n%s", html)
	}
	cleared := false
	for _, c := range res.Cookies() {
		cleared = cleared || c.Name == auth.FlashCookie && c.MaxAge < 0
	}
	if !cleared {
		t.Fatal("the flash cookie is not cleared")
	}
	if strings.Contains(html, "no value") {
		t.Fatalf("a missing key rendered as text:\n%s", html)
	}

	// nil data and an unknown page.
	if res := render(t, context.Background(), "error", nil); res.StatusCode != http.StatusTeapot {
		t.Fatalf("nil data: %d", res.StatusCode)
	}
	if res := render(t, context.Background(), "no-such-page", nil); res.StatusCode != http.StatusInternalServerError {
		t.Fatalf("unknown page: %d", res.StatusCode)
	}
}

func TestError(t *testing.T) {
	for err, want := range map[error]struct {
		status int
		text   string
	}{
		ferry.Errorf(ferry.ENOTFOUND, "project %q not found", "x"): {404, "Project &#34;x&#34; not found"},
		errors.New("dial tcp 10.0.0.5:5432: secret detail"):        {500, "Internal error"},
	} {
		rec := httptest.NewRecorder()
		web.Error(rec, httptest.NewRequest(http.MethodGet, "/", nil), err)
		if rec.Code != want.status || !strings.Contains(rec.Body.String(), want.text) || strings.Contains(rec.Body.String(), "secret detail") {
			t.Errorf("%v: %d\n%s", err, rec.Code, rec.Body.String())
		}
	}
}

// TestAccessible checks what a screen reader and a phone need from every auth page: a language, a viewport,
// a label for every visible input, and no fixed widths in the stylesheet that would overflow a 360 px screen.
func TestAccessible(t *testing.T) {
	ctx := auth.WithUser(context.Background(), &store.User{ID: 1, Email: "a@example.com", PasswordHash: "x"}, "t")
	inputRe := regexp.MustCompile(`<input id="([^"]+)"[^>]*>`)
	for _, page := range []string{"login", "signup", "account", "tokens"} {
		data := map[string]any{"HasPassword": true, "Tokens": []*store.APIToken{{ID: 1, Name: "ci", Prefix: "ferry_abcdef"}}}
		html := body(t, render(t, ctx, page, data))
		for _, want := range []string{`<html lang="en">`, `name="viewport" content="width=device-width, initial-scale=1"`, `<main id="main">`, `<h1>`} {
			if !strings.Contains(html, want) {
				t.Errorf("%s: no %q", page, want)
			}
		}
		for _, m := range inputRe.FindAllStringSubmatch(html, -1) {
			if !strings.Contains(html, `<label for="`+m[1]+`"`) {
				t.Errorf("%s: input %q has no label", page, m[1])
			}
		}
	}
	srv := httptest.NewServer(web.Assets())
	defer srv.Close()
	res, err := http.Get(srv.URL + "/static/style.css")
	if err != nil {
		t.Fatal(err)
	}
	css := body(t, res)
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/css") {
		t.Fatalf("style.css: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if m := regexp.MustCompile(`[^-]width:\s*\d{3,}px`).FindString(css); m != "" {
		t.Errorf("a fixed width would overflow a phone: %q", m)
	}
	if !strings.Contains(css, "@media (max-width") || !strings.Contains(css, ":focus-visible") {
		t.Error("no phone layout or no focus style")
	}
}

// Package web is Ferry's dashboard: server-rendered HTML from embedded html/template files, one small CSS file
// and a little vanilla JavaScript, with no front-end build step. Every page is templates/<page>.html defining
// "title" and "content" (and optionally "head" and "scripts"), drawn inside templates/layout.html by Render.
// Files named templates/_*.html hold shared partials and are parsed into every page.
//
// A page handler passes data that embeds Page; Render fills in the signed-in user, the CSRF token and a flash
// notice from the request, so handlers only set what is particular to them:
//
//	type projectData struct {
//		web.Page
//		Project *store.Project
//	}
//	web.Render(w, r, http.StatusOK, "project", &projectData{Page: web.Page{Title: p.Name}, Project: p})
package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/ferryhq/ferry/app/auth"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Page is what the layout needs from every page. Embed it in a page's data.
type Page struct {
	// User is the signed-in user, nil for visitors. Render fills it in.
	User *store.User
	// CSRF is the token every form posts back as the field csrf_token. Render fills it in.
	CSRF string
	// Flash is a one-time notice shown above the content. Render fills it in from the flash cookie when empty.
	Flash string
	// Error is a message shown above the content in the error style, such as a rejected form's reason.
	Error string
	// Title is the document title ("Ferry" is appended) when the page's "title" template is empty.
	Title string
}

// webPage lets Render reach the Page embedded in any page's data.
func (p *Page) webPage() *Page { return p }

type pager interface{ webPage() *Page }

// Funcs are the functions every template may call. Add to it from an init function (before the first Render).
var Funcs = template.FuncMap{
	// ago renders a time as "3 minutes ago", "" for the zero time.
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		d := time.Since(t)
		switch {
		case d < time.Minute:
			return "just now"
		case d < time.Hour:
			return plural(int(d/time.Minute), "minute") + " ago"
		case d < 48*time.Hour:
			return plural(int(d/time.Hour), "hour") + " ago"
		}
		return plural(int(d/(24*time.Hour)), "day") + " ago"
	},
	// datetime renders a time for the datetime attribute of <time>.
	"datetime": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

var (
	parseOnce sync.Once
	pages     map[string]*template.Template
	parseErr  error
)

// Templates parses every page once; tests call it to catch a broken template before a user does.
func Templates() (map[string]*template.Template, error) {
	parseOnce.Do(func() { pages, parseErr = parse() })
	return pages, parseErr
}

func parse() (map[string]*template.Template, error) {
	base, err := template.New("layout.html").Funcs(Funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("parse layout: %w", err)
	}
	if partials, _ := fs.Glob(templateFS, "templates/_*.html"); len(partials) > 0 {
		if base, err = base.ParseFS(templateFS, partials...); err != nil {
			return nil, fmt.Errorf("parse partials: %w", err)
		}
	}
	files, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("list templates: %w", err)
	}
	out := map[string]*template.Template{}
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".html")
		if name == "layout" || strings.HasPrefix(name, "_") {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFS, f)
		if err != nil {
			return nil, fmt.Errorf("parse page %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// Render draws page inside the layout with status. data is the page's data, embedding Page (or a
// map[string]any, whose "User", "CSRF", "Flash" and "Title" keys Render sets). The page is rendered into a
// buffer first, so a template error becomes a clean 500 rather than half a page.
func Render(w http.ResponseWriter, r *http.Request, status int, page string, data any) {
	ts, err := Templates()
	t := ts[page]
	if err == nil && t == nil {
		err = fmt.Errorf("no template %q", page)
	}
	if err != nil {
		slog.ErrorContext(r.Context(), "render page", "page", page, "err", err)
		http.Error(w, "internal error: the page could not be drawn", http.StatusInternalServerError)
		return
	}
	flash := takeFlash(w, r)
	switch d := data.(type) {
	case nil:
		data = &Page{User: auth.UserFrom(r.Context()), CSRF: auth.CSRFToken(r.Context()), Flash: flash}
	case pager:
		p := d.webPage()
		if p.User == nil {
			p.User = auth.UserFrom(r.Context())
		}
		if p.CSRF == "" {
			p.CSRF = auth.CSRFToken(r.Context())
		}
		if p.Flash == "" {
			p.Flash = flash
		}
	case map[string]any:
		for k, v := range map[string]any{"User": auth.UserFrom(r.Context()), "CSRF": auth.CSRFToken(r.Context()), "Flash": flash, "Title": "", "Error": ""} {
			if cur, ok := d[k]; !ok || cur == nil || cur == "" {
				d[k] = v
			}
		}
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", data); err != nil {
		slog.ErrorContext(r.Context(), "render page", "page", page, "err", err)
		http.Error(w, "internal error: the page could not be drawn", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	setSecurityHeaders(h)
	if fa := formActionFor(r); fa != "" {
		h.Set("Content-Security-Policy", strings.Replace(ContentSecurityPolicy, "form-action 'self'", "form-action 'self' "+fa, 1))
	}
	if h.Get("Cache-Control") == "" {
		h.Set("Cache-Control", "no-store") // pages carry the user's data and CSRF token
	}
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// ContentSecurityPolicy is sent with every dashboard response. The dashboard has no inline script, style or
// event handler (its JavaScript and CSS are files under /static/), so nothing but same-origin files may run or
// style a page: an injected <script> or style="" does nothing, no site may frame the dashboard, and forms post
// only to it.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

func setSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
}

// SecurityHeaders adds the dashboard's security headers (ContentSecurityPolicy, nosniff, no framing, same-origin
// referrers) to every response of next, including errors and fragments that Render does not draw.
func SecurityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setSecurityHeaders(w.Header())
		next.ServeHTTP(w, r)
	})
}

// Error renders the error page for err with its HTTP status (ferry.HTTPStatus). Internal errors are logged and
// shown generically; others show their message.
func Error(w http.ResponseWriter, r *http.Request, err error) {
	status := ferry.HTTPStatus(err)
	if status >= 500 {
		slog.ErrorContext(r.Context(), "dashboard request failed", "path", r.URL.Path, "err", err)
	}
	msg := ferry.ErrorMessage(err)
	if msg != "" {
		msg = strings.ToUpper(msg[:1]) + msg[1:]
	}
	Render(w, r, status, "error", &Page{Title: http.StatusText(status), Error: msg})
}

// takeFlash reads the one-time notice that auth.Flash set and clears it.
func takeFlash(w http.ResponseWriter, r *http.Request) string {
	c, err := r.Cookie(auth.FlashCookie)
	if err != nil || c.Value == "" {
		return ""
	}
	http.SetCookie(w, &http.Cookie{Name: auth.FlashCookie, Value: "", Path: "/", MaxAge: -1})
	msg, err := url.QueryUnescape(c.Value)
	if err != nil || len(msg) > 300 {
		return ""
	}
	return msg
}

// Assets serves the embedded static files (CSS, JavaScript); mount it at "GET /static/".
func Assets() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix("/static/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	})
}

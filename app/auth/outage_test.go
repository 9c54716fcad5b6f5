package auth_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ferryhq/ferry/app/auth"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/app/web"
)

// TestOutageHidesDatabaseDetails runs the front door on a database that is down (a socket folder with no
// server): every page answers 503 with a message that names no database user, database, host or socket path,
// and the log keeps the detail for the operator.
func TestOutageHidesDatabaseDetails(t *testing.T) {
	t.Parallel()
	sock := t.TempDir() + "/no-server-here"
	pool, err := pgxpool.New(context.Background(), "host="+sock+" user=ferrysecret dbname=ferrydb connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	logs := &logBuffer{}
	a, err := auth.New(auth.Config{Store: store.New(pool), PublicURL: "http://localhost", Render: web.Render, Signup: auth.SignupOpen,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	a.Routes(mux)
	srv := httptest.NewServer(a.Middleware(mux))
	t.Cleanup(srv.Close)

	csrf := strings.Repeat("c", 43)
	form := func(vals url.Values) *http.Request {
		vals.Set("csrf_token", csrf)
		req, _ := http.NewRequest(http.MethodPost, "", strings.NewReader(vals.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(&http.Cookie{Name: "ferry_csrf", Value: csrf})
		return req
	}
	cases := map[string]*http.Request{}
	req, _ := http.NewRequest(http.MethodGet, "", nil)
	req.AddCookie(&http.Cookie{Name: auth.SessionCookie, Value: strings.Repeat("s", 43)})
	cases["/account"] = req
	req, _ = http.NewRequest(http.MethodGet, "", nil)
	req.Header.Set("Authorization", "Bearer ferry_"+strings.Repeat("t", 43))
	cases["/account/tokens"] = req
	cases["/login"] = form(url.Values{"email": {"ada@example.com"}, "password": {"whatever-password"}})
	cases["/signup"] = form(url.Values{"email": {"ada@example.com"}, "password": {"whatever-password"}})
	for path, req := range cases {
		req.URL, _ = url.Parse(srv.URL + path)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		body := string(raw)
		if res.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("%s %s: %d, want 503:\n%s", req.Method, path, res.StatusCode, body)
		}
		for _, leak := range []string{"ferrysecret", "ferrydb", sock, "user=", "database=", ".s.PGSQL", "dial unix", "dial tcp", "dial error"} {
			if strings.Contains(body, leak) {
				t.Errorf("%s %s shows %q to the visitor:\n%s", req.Method, path, leak, body)
			}
		}
		if !strings.Contains(body, "database is unreachable") {
			t.Errorf("%s %s does not say what is wrong:\n%s", req.Method, path, body)
		}
	}
	if !strings.Contains(logs.String(), "ferrysecret") {
		t.Errorf("the log lacks the detail for the operator:\n%s", logs.String())
	}
}

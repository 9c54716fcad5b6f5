package ghreport_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/ghreport"
	"github.com/ferryhq/ferry/internal/ghreport/ghfake"
)

const (
	owner = "acme"
	repo  = "site"
	inst  = 42
	sha1  = "1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	sha2  = "2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func config(s *ghfake.Server) ghreport.Config {
	return ghreport.Config{APIURL: s.URL, Backoff: 10 * time.Millisecond, MaxRateLimitWait: 3 * time.Second,
		Logger: slog.New(slog.DiscardHandler)}
}

// newApp returns the fake with the App installed on acme/site, and the App-side client for it.
func newApp(t *testing.T) (*ghfake.Server, *ghreport.App) {
	t.Helper()
	s := ghfake.New(t)
	s.AddInstallation(inst, owner+"/"+repo)
	app, err := ghreport.NewApp(config(s), s.AppID, s.PrivateKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return s, app
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want code %s", code)
	}
	if got := ferry.ErrorCode(err); got != code {
		t.Fatalf("code = %s, want %s (err: %v)", got, code, err)
	}
}

func wantLines(t *testing.T, got []ghfake.Call, want ...string) {
	t.Helper()
	if g := ghfake.Lines(got); !reflect.DeepEqual(g, want) {
		t.Fatalf("calls:\n  %s\nwant:\n  %s", strings.Join(g, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestProductionDeploySequence(t *testing.T) {
	t.Parallel()
	s, app := newApp(t)
	r := app.Reporter(inst)
	ctx := context.Background()

	// The pending commit status comes first: GitHub would refuse the deployment (409) were required_contexts
	// not sent as an empty list.
	must(t, r.CommitStatusCreate(ctx, ghreport.CommitStatusCreateParams{Owner: owner, Repo: repo, SHA: sha1,
		Project: "site", State: ghreport.StateQueued, Description: "Queued"}))
	id, err := r.DeploymentCreate(ctx, ghreport.DeploymentCreateParams{Owner: owner, Repo: repo, SHA: sha1,
		Environment: ghreport.Environment(true, 0, "main"), Production: true, Project: "site", DeploymentID: "d-1"})
	must(t, err)
	for _, st := range []string{ghreport.StateQueued, ghreport.StateInProgress} {
		must(t, r.DeploymentStatusCreate(ctx, ghreport.DeploymentStatusCreateParams{Owner: owner, Repo: repo,
			DeploymentID: id, State: st, LogURL: "https://ferry.example.com/deployments/d-1"}))
	}
	must(t, r.DeploymentStatusCreate(ctx, ghreport.DeploymentStatusCreateParams{Owner: owner, Repo: repo,
		DeploymentID: id, State: ghreport.StateSuccess, EnvironmentURL: "https://site.example.com",
		LogURL: "https://ferry.example.com/deployments/d-1", Description: "Deployed"}))
	must(t, r.CommitStatusCreate(ctx, ghreport.CommitStatusCreateParams{Owner: owner, Repo: repo, SHA: sha1,
		Project: "site", State: ghreport.StateSuccess, TargetURL: "https://site.example.com", Description: "Ready"}))

	calls := s.Calls()
	statuses := fmt.Sprintf("POST /repos/acme/site/deployments/%d/statuses", id)
	wantLines(t, calls,
		"POST /app/installations/42/access_tokens",
		"POST /repos/acme/site/statuses/"+sha1,
		"POST /repos/acme/site/deployments",
		statuses, statuses, statuses,
		"POST /repos/acme/site/statuses/"+sha1,
	)
	if calls[0].Auth != ghfake.AuthJWT {
		t.Errorf("token exchange auth = %s, want jwt", calls[0].Auth)
	}
	for _, c := range calls[1:] {
		if c.Auth != ghfake.AuthInstallation || c.Installation != inst || c.Status >= 300 {
			t.Errorf("%s: auth %s installation %d status %d", c, c.Auth, c.Installation, c.Status)
		}
	}

	// The wire body of the deployment, as GitHub received it.
	d := calls[2]
	for field, want := range map[string]any{
		"ref": sha1, "environment": "production", "auto_merge": false, "required_contexts": []any{},
		"production_environment": true, "transient_environment": false, "task": "deploy",
		"payload": map[string]any{"ferry_project": "site", "ferry_deployment": "d-1"},
	} {
		if got := d.Field(field); !reflect.DeepEqual(got, want) {
			t.Errorf("deployment %s = %#v, want %#v", field, got, want)
		}
	}

	var states []string
	for _, st := range s.DeploymentStatuses(id) {
		states = append(states, st.State)
	}
	if want := []string{"queued", "in_progress", "success"}; !reflect.DeepEqual(states, want) {
		t.Errorf("states = %v, want %v", states, want)
	}
	last := s.DeploymentStatuses(id)[2]
	if last.EnvironmentURL != "https://site.example.com" || last.LogURL != "https://ferry.example.com/deployments/d-1" {
		t.Errorf("success status urls: env %q log %q", last.EnvironmentURL, last.LogURL)
	}
	cs := s.CommitStatuses(owner, repo, sha1)
	if len(cs) != 2 || cs[0].State != "pending" || cs[1].State != "success" || cs[1].Context != "ferry/site" ||
		cs[1].TargetURL != "https://site.example.com" {
		t.Errorf("commit statuses = %+v", cs)
	}
}

// deployPreview runs one PR push the way the app does and returns the GitHub deployment id.
func deployPreview(t *testing.T, r *ghreport.Reporter, pr int, sha, depID string) int64 {
	t.Helper()
	ctx := context.Background()
	id, err := r.DeploymentCreate(ctx, ghreport.DeploymentCreateParams{Owner: owner, Repo: repo, SHA: sha,
		Environment: ghreport.Environment(false, pr, "feature"), Project: "site", DeploymentID: depID})
	must(t, err)
	url := fmt.Sprintf("https://pr-%d--site.example.com", pr)
	must(t, r.DeploymentStatusCreate(ctx, ghreport.DeploymentStatusCreateParams{Owner: owner, Repo: repo,
		DeploymentID: id, State: ghreport.StateSuccess, EnvironmentURL: url}))
	must(t, r.CommentUpsert(ctx, owner, repo, pr, ghreport.CommentRow{Project: "site", Status: ghreport.RowReady,
		URL: url, DeploymentURL: "https://" + depID + "--site.example.com", Commit: sha,
		LogURL: "https://ferry.example.com/deployments/" + depID}))
	return id
}

func ferryComments(s *ghfake.Server, pr int) []ghfake.Comment {
	var out []ghfake.Comment
	for _, c := range s.Comments(owner, repo, pr) {
		if strings.HasPrefix(c.Body, ghreport.CommentMarker) && c.User.Type == "Bot" {
			out = append(out, c)
		}
	}
	return out
}

func TestPreviewCommentEditedInPlace(t *testing.T) {
	t.Parallel()
	s, app := newApp(t)
	r := app.Reporter(inst)
	// A busy PR: Ferry's comment lands on the second page, and a person quoting the marker is not Ferry.
	s.AddComment(owner, repo, 7, "octocat", ghreport.CommentMarker+" quoted by a person")
	for i := range 120 {
		s.AddComment(owner, repo, 7, "octocat", fmt.Sprintf("comment %d", i))
	}

	deployPreview(t, r, 7, sha1, "d-1")
	comments := ferryComments(s, 7)
	if len(comments) != 1 || comments[0].User.Login != "ferry-test[bot]" {
		t.Fatalf("after first push: ferry comments = %+v", comments)
	}
	first := comments[0]
	if !strings.Contains(first.Body, "`1111111`") || !strings.Contains(first.Body, "https://pr-7--site.example.com") {
		t.Errorf("first comment lacks the commit or URL:\n%s", first.Body)
	}
	if d := s.Deployments(owner, repo); d[0].Environment != "preview/pr-7" || !d[0].TransientEnvironment || d[0].ProductionEnvironment {
		t.Errorf("preview deployment = %+v", d[0])
	}

	s.Reset()
	deployPreview(t, r, 7, sha2, "d-2")
	wantLines(t, s.CallsMatching("* /repos/acme/site/issues/*", "* /repos/acme/site/issues/*/*"),
		"GET /repos/acme/site/issues/7/comments",
		"GET /repos/acme/site/issues/7/comments",
		fmt.Sprintf("PATCH /repos/acme/site/issues/comments/%d", first.ID),
	)
	comments = ferryComments(s, 7)
	if len(comments) != 1 || comments[0].ID != first.ID || comments[0].Edits != 1 {
		t.Fatalf("after second push: ferry comments = %+v", comments)
	}
	if body := comments[0].Body; !strings.Contains(body, "`2222222`") || strings.Contains(body, "`1111111`") {
		t.Errorf("edited comment should show only the new commit:\n%s", body)
	}
	if len(s.Comments(owner, repo, 7)) != 122 {
		t.Errorf("comments = %d, want 121 seeded + 1 Ferry", len(s.Comments(owner, repo, 7)))
	}

	// A second project in the same repository adds its row and keeps the first one.
	must(t, r.CommentUpsert(context.Background(), owner, repo, 7, ghreport.CommentRow{Project: "docs",
		Status: ghreport.RowFailed, Commit: sha2}))
	body := ferryComments(s, 7)[0].Body
	if !strings.Contains(body, "| docs | Failed |") || !strings.Contains(body, "| site | [Ready](") {
		t.Errorf("both rows expected:\n%s", body)
	}
	if strings.Index(body, "| docs |") > strings.Index(body, "| site |") {
		t.Errorf("rows should be sorted by project:\n%s", body)
	}
}

func TestPRCloseDeactivates(t *testing.T) {
	t.Parallel()
	s, app := newApp(t)
	r := app.Reporter(inst)
	ctx := context.Background()
	id1 := deployPreview(t, r, 9, sha1, "d-1")
	id2 := deployPreview(t, r, 9, sha2, "d-2")
	// Another PR's preview must stay untouched.
	other := deployPreview(t, r, 10, sha2, "d-3")

	s.Reset()
	n, err := r.DeploymentsDeactivate(ctx, owner, repo, "preview/pr-9")
	must(t, err)
	// GitHub's auto_inactive already retired d-1 when d-2 succeeded, so only d-2 needs a call.
	if n != 1 {
		t.Errorf("deactivated %d deployments, want 1", n)
	}
	wantLines(t, s.CallsMatching("* /repos/acme/site/deployments*", "* /repos/acme/site/deployments/*/*"),
		"GET /repos/acme/site/deployments",
		fmt.Sprintf("GET /repos/acme/site/deployments/%d/statuses", id2),
		fmt.Sprintf("POST /repos/acme/site/deployments/%d/statuses", id2),
		fmt.Sprintf("GET /repos/acme/site/deployments/%d/statuses", id1),
	)
	if q := s.Calls()[0].Query; q["environment"][0] != "preview/pr-9" {
		t.Errorf("list query = %v", q)
	}
	for _, id := range []int64{id1, id2} {
		sts := s.DeploymentStatuses(id)
		if sts[len(sts)-1].State != "inactive" {
			t.Errorf("deployment %d latest state = %s, want inactive", id, sts[len(sts)-1].State)
		}
	}
	if sts := s.DeploymentStatuses(other); sts[len(sts)-1].State != "success" {
		t.Errorf("other PR's deployment = %s, want success", sts[len(sts)-1].State)
	}

	must(t, r.CommentUpsert(ctx, owner, repo, 9, ghreport.CommentRow{Project: "site", Status: ghreport.RowRemoved, Commit: sha2}))
	comments := ferryComments(s, 9)
	if len(comments) != 1 || !strings.Contains(comments[0].Body, "| site | Removed | preview removed |") {
		t.Fatalf("closed PR comment = %+v", comments)
	}
	// Deactivating again changes nothing.
	n, err = r.DeploymentsDeactivate(ctx, owner, repo, "preview/pr-9")
	must(t, err)
	if n != 0 {
		t.Errorf("second deactivate marked %d", n)
	}
}

func TestFailureDescriptionTrimmed(t *testing.T) {
	t.Parallel()
	s, app := newApp(t)
	r := app.Reporter(inst)
	ctx := context.Background()
	id, err := r.DeploymentCreate(ctx, ghreport.DeploymentCreateParams{Owner: owner, Repo: repo, SHA: sha1,
		Environment: "preview/feature", Project: "site", DeploymentID: "d-1"})
	must(t, err)
	long := "npm run build failed: " + strings.Repeat("ошибка сборки ", 30) + "\nsee the log"
	must(t, r.DeploymentStatusCreate(ctx, ghreport.DeploymentStatusCreateParams{Owner: owner, Repo: repo,
		DeploymentID: id, State: ghreport.StateFailure, Description: long, LogURL: "https://ferry.example.com/l"}))
	must(t, r.CommitStatusCreate(ctx, ghreport.CommitStatusCreateParams{Owner: owner, Repo: repo, SHA: sha1,
		Project: "site", State: ghreport.StateFailure, Description: long}))

	d := s.DeploymentStatuses(id)[0].Description
	if n := utf8.RuneCountInString(d); n > 140 || !strings.HasSuffix(d, "…") || !utf8.ValidString(d) ||
		!strings.HasPrefix(d, "npm run build failed: ошибка") {
		t.Errorf("description (%d runes) = %q", n, d)
	}
	if c := s.CommitStatuses(owner, repo, sha1)[0]; c.Description != d || c.State != "failure" {
		t.Errorf("commit status = %+v", c)
	}
	// A state GitHub does not know never leaves the process.
	err = r.DeploymentStatusCreate(ctx, ghreport.DeploymentStatusCreateParams{Owner: owner, Repo: repo, DeploymentID: id, State: "done"})
	wantCode(t, err, ferry.EINVALID)
}

func TestServerErrorRetried(t *testing.T) {
	t.Parallel()
	s, app := newApp(t)
	r := app.Reporter(inst)
	ctx := context.Background()
	s.FailNext("POST /repos/acme/site/deployments", 2, ghfake.ServerError())
	_, err := r.DeploymentCreate(ctx, ghreport.DeploymentCreateParams{Owner: owner, Repo: repo, SHA: sha1,
		Environment: "production", Production: true, Project: "site"})
	must(t, err)
	var got []int
	for _, c := range s.CallsMatching("POST /repos/acme/site/deployments") {
		got = append(got, c.Status)
	}
	if want := []int{500, 500, 201}; !reflect.DeepEqual(got, want) {
		t.Errorf("statuses = %v, want %v", got, want)
	}
	if n := len(s.Deployments(owner, repo)); n != 1 {
		t.Errorf("deployments = %d, want 1", n)
	}

	// An outage outlasting the attempts is EUNAVAILABLE, which the queue retries; attempts are bounded.
	s.Reset()
	s.FailNext("POST /repos/acme/site/statuses/*", 100, ghfake.BadGateway())
	err = r.CommitStatusCreate(ctx, ghreport.CommitStatusCreateParams{Owner: owner, Repo: repo, SHA: sha1, Project: "site", State: "success"})
	wantCode(t, err, ferry.EUNAVAILABLE)
	if !ferry.IsRetryable(err) {
		t.Error("a GitHub outage must be retryable")
	}
	if n := len(s.Calls()); n != 4 {
		t.Errorf("attempts = %d, want 4", n)
	}

	// The token exchange is retried too.
	s2, app2 := newApp(t)
	s2.FailNext("POST /app/installations/*/access_tokens", 1, ghfake.ServerError())
	tok, err := app2.InstallationToken(ctx, inst)
	must(t, err)
	if !strings.HasPrefix(tok, "ghs_") {
		t.Errorf("token = %q", tok)
	}
}

func TestRateLimits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	row := ghreport.CommentRow{Project: "site", Status: ghreport.RowReady, Commit: sha1}

	t.Run("secondary, short: waits and succeeds", func(t *testing.T) {
		t.Parallel()
		s, app := newApp(t)
		s.FailNext("GET /repos/acme/site/issues/*/comments", 1, ghfake.SecondaryRateLimited(time.Second))
		start := time.Now()
		must(t, app.Reporter(inst).CommentUpsert(ctx, owner, repo, 3, row))
		if el := time.Since(start); el < time.Second {
			t.Errorf("returned after %s, before Retry-After", el)
		}
		if n := len(ferryComments(s, 3)); n != 1 {
			t.Errorf("comments = %d", n)
		}
	})
	t.Run("primary, resets soon: waits and succeeds", func(t *testing.T) {
		t.Parallel()
		s, app := newApp(t)
		s.FailNext("POST /repos/acme/site/deployments", 1, ghfake.RateLimited(time.Now().Add(time.Second)))
		_, err := app.Reporter(inst).DeploymentCreate(ctx, ghreport.DeploymentCreateParams{Owner: owner, Repo: repo,
			SHA: sha1, Environment: "production", Production: true, Project: "site"})
		must(t, err)
		if n := len(s.CallsMatching("POST /repos/acme/site/deployments")); n != 2 {
			t.Errorf("deployment posts = %d, want 2", n)
		}
	})
	t.Run("primary, resets in an hour: fails fast", func(t *testing.T) {
		t.Parallel()
		s, app := newApp(t)
		r := app.Reporter(inst)
		s.FailNext("POST /repos/acme/site/deployments", 1, ghfake.RateLimited(time.Now().Add(time.Hour)))
		start := time.Now()
		_, err := r.DeploymentCreate(ctx, ghreport.DeploymentCreateParams{Owner: owner, Repo: repo,
			SHA: sha1, Environment: "production", Production: true, Project: "site"})
		wantCode(t, err, ferry.EUNAVAILABLE)
		if !strings.Contains(err.Error(), "rate limit") {
			t.Errorf("message = %q", err)
		}
		if el := time.Since(start); el > time.Second {
			t.Errorf("took %s; a long rate limit must fail at once", el)
		}
		// The client remembers the limit and does not hammer GitHub until it resets.
		before := len(s.Calls())
		err = r.CommitStatusCreate(ctx, ghreport.CommitStatusCreateParams{Owner: owner, Repo: repo, SHA: sha1, Project: "site", State: "pending"})
		wantCode(t, err, ferry.EUNAVAILABLE)
		if after := len(s.Calls()); after != before {
			t.Errorf("%d calls made while rate limited", after-before)
		}
	})
}

func TestAuthFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	params := ghreport.DeploymentCreateParams{Owner: owner, Repo: repo, SHA: sha1, Environment: "production", Production: true, Project: "site"}

	t.Run("JWT signed with another key", func(t *testing.T) {
		t.Parallel()
		s := ghfake.New(t)
		s.AddInstallation(inst, owner+"/"+repo)
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		must(t, err)
		pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
		app, err := ghreport.NewApp(config(s), s.AppID, pemKey)
		must(t, err)
		_, err = app.Reporter(inst).DeploymentCreate(ctx, params)
		wantCode(t, err, ferry.EUNAUTHORIZED)
		if !strings.Contains(err.Error(), "--github-private-key-file") {
			t.Errorf("message should say what to check: %v", err)
		}
		wantLines(t, s.Calls(), "POST /app/installations/42/access_tokens")
		if c := s.Calls()[0]; c.Auth != ghfake.AuthInvalid || c.Status != 401 {
			t.Errorf("call = %+v", c)
		}
	})
	t.Run("JWT with another App id", func(t *testing.T) {
		t.Parallel()
		s := ghfake.New(t)
		s.AddInstallation(inst, owner+"/"+repo)
		app, err := ghreport.NewApp(config(s), s.AppID+1, s.PrivateKeyPEM)
		must(t, err)
		_, err = app.InstallationToken(ctx, inst)
		wantCode(t, err, ferry.EUNAUTHORIZED)
	})
	t.Run("unknown installation", func(t *testing.T) {
		t.Parallel()
		s, app := newApp(t)
		_, err := app.Reporter(7).DeploymentCreate(ctx, params)
		wantCode(t, err, ferry.ENOTFOUND)
		if n := len(s.Calls()); n != 1 {
			t.Errorf("calls = %d, want 1 (a 404 is not retried)", n)
		}
	})
	t.Run("installation without the repository", func(t *testing.T) {
		t.Parallel()
		s, app := newApp(t)
		s.AddInstallation(43, "other/repo")
		_, err := app.Reporter(43).DeploymentCreate(ctx, params)
		wantCode(t, err, ferry.ENOTFOUND)
	})
	t.Run("wrong installation token", func(t *testing.T) {
		t.Parallel()
		s, _ := newApp(t)
		r, err := ghreport.NewTokenReporter(config(s), "ghs_notissuedbythisserver")
		must(t, err)
		_, err = r.DeploymentCreate(ctx, params)
		wantCode(t, err, ferry.EUNAUTHORIZED)
		if c := s.Calls(); len(c) != 1 || c[0].Status != 401 || c[0].Auth != ghfake.AuthInvalid {
			t.Errorf("calls = %+v", c)
		}
	})
	t.Run("revoked installation token", func(t *testing.T) {
		t.Parallel()
		s, app := newApp(t)
		r := app.Reporter(inst)
		_, err := r.DeploymentCreate(ctx, params)
		must(t, err)
		s.RevokeTokens()
		_, err = r.DeploymentCreate(ctx, params)
		wantCode(t, err, ferry.EUNAUTHORIZED)
	})
	t.Run("missing permission", func(t *testing.T) {
		t.Parallel()
		s, app := newApp(t)
		s.FailNext("POST /repos/acme/site/deployments", 1, ghfake.Forbidden())
		_, err := app.Reporter(inst).DeploymentCreate(ctx, params)
		wantCode(t, err, ferry.EFORBIDDEN)
		if !strings.Contains(err.Error(), "the App lacks the Deployments") {
			t.Errorf("message = %v", err)
		}
	})
}

func TestActionToken(t *testing.T) {
	t.Parallel()
	s := ghfake.New(t)
	s.AddToken("ghs_actiontoken", owner+"/"+repo)
	r, err := ghreport.NewTokenReporter(config(s), "ghs_actiontoken")
	must(t, err)
	ctx := context.Background()
	row := ghreport.CommentRow{Project: "site", Status: ghreport.RowReady, URL: "https://pr-5--site.example.com", Commit: sha1}
	must(t, r.CommentUpsert(ctx, owner, repo, 5, row))
	row.Commit = sha2
	must(t, r.CommentUpsert(ctx, owner, repo, 5, row))
	cs := s.Comments(owner, repo, 5)
	if len(cs) != 1 || cs[0].User.Login != "github-actions[bot]" || cs[0].Edits != 1 {
		t.Fatalf("comments = %+v", cs)
	}
	for _, c := range s.Calls() {
		if c.Auth != ghfake.AuthToken {
			t.Errorf("%s auth = %s", c, c.Auth)
		}
	}
	// The same token cannot reach another repository.
	_, err = r.DeploymentCreate(ctx, ghreport.DeploymentCreateParams{Owner: "someone", Repo: "else", SHA: sha1, Environment: "production"})
	wantCode(t, err, ferry.ENOTFOUND)
}

func TestEnvironment(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		production bool
		pr         int
		branch     string
		want       string
	}{
		{true, 0, "main", "production"},
		{true, 4, "main", "production"},
		{false, 42, "feature/x", "preview/pr-42"},
		{false, 0, "feature/x", "preview/feature/x"},
	} {
		if got := ghreport.Environment(tc.production, tc.pr, tc.branch); got != tc.want {
			t.Errorf("Environment(%v, %d, %q) = %q, want %q", tc.production, tc.pr, tc.branch, got, tc.want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	_, err := ghreport.NewTokenReporter(ghreport.Config{APIURL: "ghe.example.com"}, "t")
	wantCode(t, err, ferry.EINVALID)
	_, err = ghreport.NewTokenReporter(ghreport.Config{}, "")
	wantCode(t, err, ferry.EINVALID)
	_, err = ghreport.NewApp(ghreport.Config{}, 1, []byte("not a key"))
	wantCode(t, err, ferry.EINVALID)
	_, err = ghreport.NewApp(ghreport.Config{}, 0, nil)
	wantCode(t, err, ferry.EINVALID)

	// An Enterprise API root is used as given.
	r, err := ghreport.NewTokenReporter(ghreport.Config{APIURL: "https://ghe.example.com/api/v3"}, "t")
	must(t, err)
	if got := r.Client().BaseURL.String(); got != "https://ghe.example.com/api/v3/" {
		t.Errorf("BaseURL = %s", got)
	}
}

func TestContextCanceledStopsRetries(t *testing.T) {
	t.Parallel()
	s := ghfake.New(t)
	s.AddToken("tok", owner+"/"+repo)
	cfg := config(s)
	cfg.Backoff = time.Hour
	r, err := ghreport.NewTokenReporter(cfg, "tok")
	must(t, err)
	s.FailNext("POST /repos/acme/site/statuses/*", 5, ghfake.ServerError())
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err = r.CommitStatusCreate(ctx, ghreport.CommitStatusCreateParams{Owner: owner, Repo: repo, SHA: sha1, Project: "site", State: "pending"})
	if err == nil || ctx.Err() == nil {
		t.Fatalf("err = %v", err)
	}
	if n := len(s.Calls()); n != 1 {
		t.Errorf("calls = %d, want 1", n)
	}
}

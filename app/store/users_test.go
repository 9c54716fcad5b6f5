package store_test

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/pgtest"
)

func hash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func TestUsers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(pgtest.New(t))

	u := must[*store.User](t)(st.UserCreate(ctx, store.UserCreateParams{Email: " Ada@Example.COM ", Name: "Ada", PasswordHash: "$argon2id$x"}))
	if u.Email != "ada@example.com" || u.ID == 0 || u.PasswordHash != "$argon2id$x" {
		t.Fatalf("created %+v", u)
	}
	_, err := st.UserCreate(ctx, store.UserCreateParams{Email: "ADA@example.com"})
	wantCode(t, err, ferry.ECONFLICT)
	if ferry.ErrorMessage(err) == "" {
		t.Fatal("no message")
	}
	got := must[*store.User](t)(st.UserGetByEmail(ctx, "ada@EXAMPLE.com"))
	if got.ID != u.ID {
		t.Fatalf("by email: %+v", got)
	}
	_, err = st.UserGetByEmail(ctx, "")
	wantCode(t, err, ferry.ENOTFOUND)
	_, err = st.UserGetByID(ctx, u.ID+1000)
	wantCode(t, err, ferry.ENOTFOUND)

	if err := st.UserSetPassword(ctx, u.ID, "$argon2id$y"); err != nil {
		t.Fatal(err)
	}
	if got := must[*store.User](t)(st.UserGetByID(ctx, u.ID)); got.PasswordHash != "$argon2id$y" {
		t.Fatalf("password not set: %+v", got)
	}
	wantCode(t, st.UserSetPassword(ctx, u.ID+1000, "x"), ferry.ENOTFOUND)

	// Two GitHub-only users (empty email) do not collide on the email key.
	g1 := must[*store.User](t)(st.UserUpsertGitHub(ctx, store.UserUpsertGitHubParams{GitHubID: 11, GitHubLogin: "octo", Name: "Octo"}))
	g2 := must[*store.User](t)(st.UserUpsertGitHub(ctx, store.UserUpsertGitHubParams{GitHubID: 12, GitHubLogin: "cat"}))
	again := must[*store.User](t)(st.UserUpsertGitHub(ctx, store.UserUpsertGitHubParams{GitHubID: 11, GitHubLogin: "octo-renamed"}))
	if g1.ID == g2.ID || again.ID != g1.ID || again.GitHubLogin != "octo-renamed" || again.Email != "" {
		t.Fatalf("upsert: %+v %+v %+v", g1, g2, again)
	}
	linked := must[*store.User](t)(st.UserUpsertGitHub(ctx, store.UserUpsertGitHubParams{UserID: u.ID, GitHubID: 13, GitHubLogin: "ada"}))
	if linked.ID != u.ID || linked.GitHubID != 13 || linked.Name != "Ada" {
		t.Fatalf("link: %+v", linked)
	}
	_, err = st.UserUpsertGitHub(ctx, store.UserUpsertGitHubParams{UserID: u.ID, GitHubID: 11})
	wantCode(t, err, ferry.ECONFLICT)
}

func TestSessions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(pgtest.New(t))
	u := must[*store.User](t)(st.UserCreate(ctx, store.UserCreateParams{Email: "s@example.com"}))

	s1 := must[*store.Session](t)(st.SessionCreate(ctx, store.SessionCreateParams{UserID: u.ID, TokenHash: hash("a"), CSRFToken: "c1", ExpiresAt: time.Now().Add(time.Hour)}))
	s2 := must[*store.Session](t)(st.SessionCreate(ctx, store.SessionCreateParams{UserID: u.ID, TokenHash: hash("b"), CSRFToken: "c2", ExpiresAt: time.Now().Add(time.Hour)}))
	_ = must[*store.Session](t)(st.SessionCreate(ctx, store.SessionCreateParams{UserID: u.ID, TokenHash: hash("old"), CSRFToken: "c3", ExpiresAt: time.Now().Add(-time.Second)}))

	sess, user, err := st.SessionGetByTokenHash(ctx, hash("a"))
	if err != nil || sess.ID != s1.ID || sess.CSRFToken != "c1" || user.ID != u.ID || user.Email != "s@example.com" {
		t.Fatalf("get: %+v %+v %v", sess, user, err)
	}
	_, _, err = st.SessionGetByTokenHash(ctx, hash("old"))
	wantCode(t, err, ferry.ENOTFOUND)
	_, _, err = st.SessionGetByTokenHash(ctx, hash("nope"))
	wantCode(t, err, ferry.ENOTFOUND)

	if n := must[int64](t)(st.SessionDeleteExpired(ctx, time.Now())); n != 1 {
		t.Fatalf("deleted %d expired sessions, want 1", n)
	}
	if err := st.SessionDeleteForUser(ctx, u.ID, s2.ID); err != nil {
		t.Fatal(err)
	}
	_, _, err = st.SessionGetByTokenHash(ctx, hash("a"))
	wantCode(t, err, ferry.ENOTFOUND)
	if _, _, err := st.SessionGetByTokenHash(ctx, hash("b")); err != nil {
		t.Fatalf("kept session: %v", err)
	}
	if err := st.SessionDelete(ctx, s2.ID); err != nil {
		t.Fatal(err)
	}
	_, _, err = st.SessionGetByTokenHash(ctx, hash("b"))
	wantCode(t, err, ferry.ENOTFOUND)
}

func TestAPITokens(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(pgtest.New(t))
	u := must[*store.User](t)(st.UserCreate(ctx, store.UserCreateParams{Email: "t@example.com"}))
	other := must[*store.User](t)(st.UserCreate(ctx, store.UserCreateParams{Email: "o@example.com"}))

	t1 := must[*store.APIToken](t)(st.APITokenCreate(ctx, store.APITokenCreateParams{UserID: u.ID, Name: "ci", Prefix: "fy_abc", TokenHash: hash("t1")}))
	t2 := must[*store.APIToken](t)(st.APITokenCreate(ctx, store.APITokenCreateParams{UserID: u.ID, Name: "laptop", Prefix: "fy_def", TokenHash: hash("t2")}))
	if !t1.LastUsedAt.IsZero() {
		t.Fatalf("new token used at %v", t1.LastUsedAt)
	}
	_, err := st.APITokenCreate(ctx, store.APITokenCreateParams{UserID: u.ID, Name: "", Prefix: "x", TokenHash: hash("t3")})
	wantCode(t, err, ferry.EINVALID)

	list := must[[]*store.APIToken](t)(st.APITokenList(ctx, u.ID))
	if len(list) != 2 || list[0].ID != t2.ID || list[1].Name != "ci" {
		t.Fatalf("list: %+v", list)
	}
	tok, user, err := st.APITokenGetByHash(ctx, hash("t1"))
	if err != nil || tok.ID != t1.ID || user.ID != u.ID || tok.LastUsedAt.IsZero() {
		t.Fatalf("get: %+v %+v %v", tok, user, err)
	}
	wantCode(t, st.APITokenDelete(ctx, other.ID, t1.ID), ferry.ENOTFOUND)
	if err := st.APITokenDelete(ctx, u.ID, t1.ID); err != nil {
		t.Fatal(err)
	}
	_, _, err = st.APITokenGetByHash(ctx, hash("t1"))
	wantCode(t, err, ferry.ENOTFOUND)
}

func TestProjectAccess(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(pgtest.New(t))
	alice := must[*store.User](t)(st.UserCreate(ctx, store.UserCreateParams{Email: "alice@example.com"}))
	bob := must[*store.User](t)(st.UserCreate(ctx, store.UserCreateParams{Email: "bob@example.com"}))
	for _, id := range []int64{100, 200} {
		if _, err := st.InstallationUpsert(ctx, store.InstallationUpsertParams{ID: id, AccountLogin: "org", AccountType: "Organization", AccountID: id}); err != nil {
			t.Fatal(err)
		}
	}
	own := must[*store.Project](t)(st.ProjectCreate(ctx, store.ProjectCreateParams{Name: "alice-own", CloneURL: "https://example.com/a.git", OwnerID: alice.ID}))
	viaInst := must[*store.Project](t)(st.ProjectCreate(ctx, store.ProjectCreateParams{Name: "inst-100", CloneURL: "https://example.com/b.git", InstallationID: 100, GitHubRepoID: 1}))
	otherInst := must[*store.Project](t)(st.ProjectCreate(ctx, store.ProjectCreateParams{Name: "inst-200", CloneURL: "https://example.com/c.git", InstallationID: 200, GitHubRepoID: 2}))
	bobs := must[*store.Project](t)(st.ProjectCreate(ctx, store.ProjectCreateParams{Name: "bob-own", CloneURL: "https://example.com/d.git", OwnerID: bob.ID}))

	if err := st.UserInstallationsReplace(ctx, alice.ID, []int64{100, 999}); err != nil {
		t.Fatal(err)
	}
	names := func(ps []*store.Project) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Name)
		}
		return out
	}
	got := names(must[[]*store.Project](t)(st.ProjectListForUser(ctx, alice.ID)))
	if len(got) != 2 || got[0] != "inst-100" || got[1] != "alice-own" {
		t.Fatalf("alice sees %v, want [inst-100 alice-own] (newest first)", got)
	}
	if got := names(must[[]*store.Project](t)(st.ProjectListForUser(ctx, bob.ID))); len(got) != 1 || got[0] != "bob-own" {
		t.Fatalf("bob sees %v", got)
	}
	for _, p := range []*store.Project{own, viaInst} {
		if _, err := st.ProjectGetForUser(ctx, alice.ID, p.ID); err != nil {
			t.Fatalf("alice cannot get %s: %v", p.Name, err)
		}
		if _, err := st.ProjectGetByNameForUser(ctx, alice.ID, p.Name); err != nil {
			t.Fatalf("alice cannot get %s by name: %v", p.Name, err)
		}
	}
	for _, p := range []*store.Project{otherInst, bobs} {
		_, err := st.ProjectGetForUser(ctx, alice.ID, p.ID)
		wantCode(t, err, ferry.ENOTFOUND)
		_, err = st.ProjectGetByNameForUser(ctx, alice.ID, p.Name)
		wantCode(t, err, ferry.ENOTFOUND)
	}
	_, err := st.ProjectGetForUser(ctx, alice.ID, 987654)
	wantCode(t, err, ferry.ENOTFOUND)

	// A new list replaces the old one.
	if err := st.UserInstallationsReplace(ctx, alice.ID, []int64{200}); err != nil {
		t.Fatal(err)
	}
	if got := names(must[[]*store.Project](t)(st.ProjectListForUser(ctx, alice.ID))); len(got) != 2 || got[0] != "inst-200" {
		t.Fatalf("after replace alice sees %v", got)
	}
	if ids := must[[]int64](t)(st.UserInstallationList(ctx, alice.ID)); len(ids) != 1 || ids[0] != 200 {
		t.Fatalf("installations %v", ids)
	}
	if err := st.UserInstallationsReplace(ctx, alice.ID, nil); err != nil {
		t.Fatal(err)
	}
	if got := names(must[[]*store.Project](t)(st.ProjectListForUser(ctx, alice.ID))); len(got) != 1 {
		t.Fatalf("after clearing alice sees %v", got)
	}
	// The owner key exists.
	_, err = st.ProjectCreate(ctx, store.ProjectCreateParams{Name: "ghost", CloneURL: "https://example.com/e.git", OwnerID: 424242})
	wantCode(t, err, ferry.ENOTFOUND)
}

func TestLoginAttemptsAndLinks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(pgtest.New(t))
	u := must[*store.User](t)(st.UserCreate(ctx, store.UserCreateParams{Email: "l@example.com"}))

	since := time.Now().Add(-time.Minute)
	for i := 0; i < 3; i++ {
		if err := st.LoginAttemptRecord(ctx, "account:l@example.com", "ip:10.0.0.1"); err != nil {
			t.Fatal(err)
		}
	}
	if n := must[int](t)(st.LoginAttemptCount(ctx, "ip:10.0.0.1", since)); n != 3 {
		t.Fatalf("count = %d", n)
	}
	if n := must[int](t)(st.LoginAttemptCount(ctx, "ip:10.0.0.1", time.Now().Add(time.Minute))); n != 0 {
		t.Fatalf("count in the future = %d", n)
	}
	if err := st.LoginAttemptClear(ctx, "account:l@example.com"); err != nil {
		t.Fatal(err)
	}
	if n := must[int](t)(st.LoginAttemptCount(ctx, "account:l@example.com", since)); n != 0 {
		t.Fatalf("count after clear = %d", n)
	}

	if err := st.LoginLinkCreate(ctx, u.ID, hash("link"), time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := st.LoginLinkCreate(ctx, u.ID, hash("expired"), time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if id := must[int64](t)(st.LoginLinkUse(ctx, hash("link"))); id != u.ID {
		t.Fatalf("link user %d", id)
	}
	_, err := st.LoginLinkUse(ctx, hash("link"))
	wantCode(t, err, ferry.ENOTFOUND)
	_, err = st.LoginLinkUse(ctx, hash("expired"))
	wantCode(t, err, ferry.ENOTFOUND)
}

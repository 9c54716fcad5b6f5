package app

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/ferryhq/ferry/app/projects"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/build/gitserver"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/pgtest"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/storage"
)

// fakeTokens is a tokenSource that hands out one token and records which installations asked.
type fakeTokens struct {
	token string
	mu    sync.Mutex
	asked []int64
}

func (f *fakeTokens) InstallationToken(_ context.Context, id int64) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, id)
	return f.token, nil
}

// TestDeployNowPrivateRepository: "deploy now" of a branch of a private App repository looks the branch up
// with the installation's token, through the projects service the dashboard and the API use; without a token
// source the repository refuses the look-up.
func TestDeployNowPrivateRepository(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const token, installation = "ghs_private_repo_token", 4242
	git, err := gitserver.New(t.TempDir(), token)
	if err != nil {
		t.Skipf("git is not installed: apt-get install git (%v)", err)
	}
	hs := httptest.NewServer(git)
	t.Cleanup(hs.Close)
	repo, err := git.CreateRepo("acme/private", []map[string]string{{"index.html": "secret site"}})
	if err != nil {
		t.Fatal(err)
	}

	pool := pgtest.New(t)
	st := store.New(pool)
	rc, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := storage.Open(ctx, "file://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	u, err := st.UserCreate(ctx, store.UserCreateParams{Email: "owner@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.InstallationUpsert(ctx, store.InstallationUpsertParams{ID: installation, AccountLogin: "acme", AccountType: "Organization", AccountID: 9}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ProjectCreate(ctx, store.ProjectCreateParams{Name: "private", Repository: "acme/private",
		CloneURL: hs.URL + repo.Path, GitHubRepoID: 777, InstallationID: installation, OwnerID: u.ID}); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := Config{Domain: "localhost", GitAllowLoopback: true, GitAllowHTTP: true} // the fixture is on loopback

	anon, err := newProjects(cfg, st, rc, site.NewStore(blobs), nil, nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := anon.DeployNow(ctx, u.ID, "private", projects.DeployParams{Branch: "main"}); ferry.ErrorCode(err) != ferry.EINVALID || git.Refused.Load() == 0 {
		t.Fatalf("anonymous look-up of a private repository: %v (refused %d)", err, git.Refused.Load())
	}

	tokens := &fakeTokens{token: token}
	svc, err := newProjects(cfg, st, rc, site.NewStore(blobs), nil, tokens, logger)
	if err != nil {
		t.Fatal(err)
	}
	d, err := svc.DeployNow(ctx, u.ID, "private", projects.DeployParams{Branch: "main"})
	if err != nil {
		t.Fatalf("deploy now with the installation's token: %v", err)
	}
	if d.Commit != repo.Commits[0] || d.Branch != "main" {
		t.Fatalf("deployment %+v, want commit %s of main", d, repo.Commits[0])
	}
	if len(tokens.asked) != 1 || tokens.asked[0] != installation {
		t.Fatalf("tokens asked for installations %v, want [%d]", tokens.asked, installation)
	}
}

package build

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/build/gitserver"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/netpolicy"
)

func cloneInto(t *testing.T, e *testEnv, repo, ref, token string) (string, string, error) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "src")
	m := &masker{}
	m.add(token)
	log := slog.New(&maskHandler{inner: must(NewLogHandler(e.logs, "text")), m: m})
	commit, err := clone(context.Background(), cloneParams{Repo: repo, Ref: ref, Token: token, Dir: dir, Home: t.TempDir(), Policy: netpolicy.Policy{AllowLoopback: true}, Log: log, Mask: m})
	return dir, commit, err
}

func TestCloneOverHTTP(t *testing.T) {
	const token = "ghs_testtoken1234567890"
	e := newTestEnv(t, token)
	r, err := e.srv.CreateRepo("acme/multi", []map[string]string{
		{"index.html": "one"},
		{"index.html": "two"},
	}, "feature/x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gitserver.CreateRepo(e.srv.Root, "acme/unused", []map[string]string{{"a": "b"}}); err != nil {
		t.Fatal(err)
	}
	url := e.url + r.Path

	t.Run("by SHA of an older commit", func(t *testing.T) {
		dir, commit, err := cloneInto(t, e, url, r.Commits[0], token)
		if err != nil {
			t.Fatal(err)
		}
		if commit != r.Commits[0] {
			t.Errorf("commit = %s, want %s", commit, r.Commits[0])
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "index.html")); string(b) != "one" {
			t.Errorf("index.html = %q, want the first commit's", b)
		}
		// Shallow: only the one commit is there.
		if n := strings.Count(gitOut(t, dir, "rev-list", "--all"), "\n"); n != 1 {
			t.Errorf("history has %d commits, want 1 (depth 1)", n)
		}
		// The token is nowhere in the checkout's git config.
		cfg, _ := os.ReadFile(filepath.Join(dir, ".git", "config"))
		if strings.Contains(string(cfg), token) || strings.Contains(string(cfg), "extraHeader") || strings.Contains(string(cfg), "Authorization") {
			t.Errorf(".git/config holds credentials:\n%s", cfg)
		}
	})
	t.Run("by branch", func(t *testing.T) {
		dir, commit, err := cloneInto(t, e, url, "feature/x", token)
		if err != nil {
			t.Fatal(err)
		}
		if commit != r.Commits[1] {
			t.Errorf("commit = %s, want the branch head %s", commit, r.Commits[1])
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "index.html")); string(b) != "two" {
			t.Errorf("index.html = %q", b)
		}
	})
	t.Run("default HEAD", func(t *testing.T) {
		_, commit, err := cloneInto(t, e, url, "", token)
		if err != nil || commit != r.Commits[1] {
			t.Fatalf("commit %s, err %v; want %s", commit, err, r.Commits[1])
		}
	})
	t.Run("wrong token", func(t *testing.T) {
		refused := e.srv.Refused.Load()
		_, _, err := cloneInto(t, e, url, "main", "ghs_wrongtoken999")
		wantCode(t, err, ferry.EUNAUTHORIZED, "refused the credentials", "--token-file")
		if ferry.ExitCode(err) != ferry.ExitUser {
			t.Errorf("exit code %d, want 2", ferry.ExitCode(err))
		}
		if e.srv.Refused.Load() == refused {
			t.Error("the server refused nothing: was the token checked?")
		}
	})
	t.Run("no token", func(t *testing.T) {
		_, _, err := cloneInto(t, e, url, "main", "")
		wantCode(t, err, ferry.EUNAUTHORIZED)
	})
	t.Run("bad ref", func(t *testing.T) {
		_, _, err := cloneInto(t, e, url, "no-such-branch", token)
		wantCode(t, err, ferry.ENOTFOUND, `ref "no-such-branch" not found`)
	})
	t.Run("unknown SHA", func(t *testing.T) {
		_, _, err := cloneInto(t, e, url, strings.Repeat("ab", 20), token)
		wantCode(t, err, ferry.ENOTFOUND, "not found")
	})
	t.Run("short SHA", func(t *testing.T) {
		_, _, err := cloneInto(t, e, url, r.Commits[0][:7], token)
		wantCode(t, err, ferry.ENOTFOUND, "full 40-character id")
	})
	t.Run("missing repo", func(t *testing.T) {
		_, _, err := cloneInto(t, e, e.url+"/acme/nope.git", "main", token)
		wantCode(t, err, ferry.ENOTFOUND, "repository", "not found")
	})
	t.Run("server down", func(t *testing.T) {
		_, _, err := cloneInto(t, e, "http://127.0.0.1:1/acme/x.git", "main", token)
		if !ferry.IsRetryable(err) {
			t.Fatalf("an unreachable server must be a retryable infrastructure error, got %v (%s)", err, ferry.ErrorCode(err))
		}
	})
	if strings.Contains(e.logs.String(), token) {
		t.Errorf("the token leaked into the logs:\n%s", e.logs)
	}
}

func TestCloneLocal(t *testing.T) {
	e := newTestEnv(t, "")
	r, err := gitserver.CreateRepo(t.TempDir(), "local", []map[string]string{{"index.html": "hi"}}, "v1.0")
	if err != nil {
		t.Fatal(err)
	}
	for _, repo := range []string{r.Bare, "file://" + r.Bare} {
		for _, ref := range []string{"", "main", "v1.0", r.Commits[0]} {
			dir, commit, err := cloneInto(t, e, repo, ref, "")
			if err != nil {
				t.Fatalf("clone %s at %q: %v", repo, ref, err)
			}
			if commit != r.Commits[0] {
				t.Errorf("clone %s at %q: commit %s", repo, ref, commit)
			}
			if _, err := os.Stat(filepath.Join(dir, "index.html")); err != nil {
				t.Error(err)
			}
		}
	}
	_, _, err = cloneInto(t, e, filepath.Join(t.TempDir(), "missing"), "main", "")
	wantCode(t, err, ferry.ENOTFOUND, "does not exist")
	_, _, err = cloneInto(t, e, "ext::sh -c touch% /tmp/pwned", "main", "")
	wantCode(t, err, ferry.EINVALID)
	_, _, err = cloneInto(t, e, "https://user:secret@example.com/x.git", "main", "")
	wantCode(t, err, ferry.EINVALID, "--token-file")
	_, _, err = cloneInto(t, e, r.Bare, "--upload-pack=touch /tmp/pwned", "")
	wantCode(t, err, ferry.EINVALID)
}

// TestCloneSubmodules checks that submodules come along, and that a submodule on the file transport (which
// could read the host) is refused.
func TestCloneSubmodules(t *testing.T) {
	e := newTestEnv(t, "")
	sub, err := e.srv.CreateRepo("acme/theme", []map[string]string{{"theme.css": "body{}"}})
	if err != nil {
		t.Fatal(err)
	}
	parent, err := e.srv.CreateRepo("acme/withsub", []map[string]string{{"index.html": "x"}})
	if err != nil {
		t.Fatal(err)
	}
	addSubmodule(t, parent.Bare, e.url+sub.Path, "theme")
	dir, _, err := cloneInto(t, e, e.url+parent.Path, "main", "")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "theme", "theme.css")); err != nil || string(b) != "body{}" {
		t.Fatalf("submodule not checked out: %q %v", b, err)
	}

	hostile, err := e.srv.CreateRepo("acme/hostile", []map[string]string{{"index.html": "x"}})
	if err != nil {
		t.Fatal(err)
	}
	addSubmodule(t, hostile.Bare, sub.Bare, "steal")
	_, _, err = cloneInto(t, e, e.url+hostile.Path, "main", "")
	wantCode(t, err, ferry.EBUILD, "submodules")
}

// addSubmodule commits a submodule at path into bare's main branch.
func addSubmodule(t *testing.T, bare, url, path string) {
	t.Helper()
	work := t.TempDir()
	gitOut(t, work, "clone", "-q", bare, ".")
	gitOut(t, work, "-c", "protocol.file.allow=always", "submodule", "add", "-q", url, path)
	gitOut(t, work, "commit", "-q", "-m", "add submodule")
	gitOut(t, work, "push", "-q", "origin", "main")
}

func gitOut(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := runGit(context.Background(), dir, append(gitEnv(t.TempDir(), true),
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com",
		"GIT_ALLOW_PROTOCOL=https:http:file"), slog.New(slog.DiscardHandler), &masker{}, args...)
	if err != nil {
		t.Fatalf("git %v: %v: %s", args, err, out)
	}
	return out
}

// TestCloneLocalOwnedByAnotherUser is the GitHub Action's case: a Docker action runs as root over a checkout
// that belongs to the runner's user (uid 1001), which git refuses as "dubious ownership" unless the clone
// trusts that one repository.
func TestCloneLocalOwnedByAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the repository to another user")
	}
	e := newTestEnv(t, "")
	work := filepath.Join(t.TempDir(), "checkout")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	gitOut(t, work, "init", "-q", "-b", "main")
	if err := os.WriteFile(filepath.Join(work, "index.html"), []byte("theirs"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitOut(t, work, "add", "-A")
	gitOut(t, work, "commit", "-q", "-m", "site")
	head := strings.TrimSpace(gitOut(t, work, "rev-parse", "HEAD"))
	err := filepath.WalkDir(work, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, 1001, 1001)
	})
	if err != nil {
		t.Fatal(err)
	}
	// Without the exception git refuses it: the case is real, and the error says why.
	plain := t.TempDir()
	gitOut(t, plain, "init", "-q")
	out, err := runGit(context.Background(), plain, gitEnv(t.TempDir(), true), slog.New(slog.DiscardHandler), &masker{}, "fetch", "--depth=1", work, "HEAD")
	if err == nil || !strings.Contains(out, "dubious ownership") {
		t.Fatalf("git read a repository of uid 1001 without safe.directory (out %q, err %v): the test proves nothing", out, err)
	}
	wantCode(t, fetchError(work, "HEAD", out, err), ferry.EINVALID, "another user owns it")
	for _, repo := range []string{work, "file://" + work} {
		dir, commit, err := cloneInto(t, e, repo, "", "")
		if err != nil {
			t.Fatalf("clone %s: %v\n%s", repo, err, e.logs)
		}
		if commit != head {
			t.Errorf("clone %s: commit %s, want %s", repo, commit, head)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "index.html")); string(b) != "theirs" {
			t.Errorf("clone %s: index.html = %q", repo, b)
		}
		if cfg, _ := os.ReadFile(filepath.Join(dir, ".git", "config")); strings.Contains(string(cfg), "safe") {
			t.Errorf("the checkout's .git/config holds the exception:\n%s", cfg)
		}
	}
	// Nothing was written into the user's repository.
	if out := gitOut(t, t.TempDir(), "-c", "safe.directory=*", "-C", work, "status", "--porcelain", "--ignored"); out != "" {
		t.Errorf("the repository changed: %s", out)
	}
}

// TestFetchErrorClassifiesByGitsWords checks that an outage stays retryable even when the URL's port or path
// holds the digits of an HTTP refusal, and that a real refusal is the user's to fix.
func TestFetchErrorClassifiesByGitsWords(t *testing.T) {
	t.Parallel()
	outage := "fatal: unable to access 'http://127.0.0.1:34035/acme/web.git/': The requested URL returned error: 503"
	wantCode(t, fetchError("http://127.0.0.1:34035/acme/web.git", "main", outage, errors.New("exit status 128")), ferry.EUNAVAILABLE, "returned error: 503")
	refused := "fatal: unable to access 'http://127.0.0.1:8080/acme/web.git/': The requested URL returned error: 403"
	wantCode(t, fetchError("http://127.0.0.1:8080/acme/web.git", "main", refused, errors.New("exit status 128")), ferry.EUNAUTHORIZED, "refused the credentials")
}

// A project's git URL that points at the host's loopback (the SSRF of issue 11 item 5, at clone time, after
// any check the App made: DNS may have changed since) is refused by the address policy before git connects,
// with an error that says so, and the server there receives nothing.
func TestCloneRefusedByAddressPolicy(t *testing.T) {
	e := newTestEnv(t, "")
	r := e.repo(map[string]string{"index.html": "x"})
	for _, repo := range []string{e.url + r.Path, strings.Replace(e.url, "127.0.0.1", "localhost", 1) + r.Path,
		strings.Replace(e.url, "127.0.0.1", "2130706433", 1) + r.Path} {
		dir := filepath.Join(t.TempDir(), "src")
		_, err := clone(context.Background(), cloneParams{Repo: repo, Ref: r.Commits[0], Dir: dir, Home: t.TempDir(),
			Policy: netpolicy.Policy{}, Log: slog.New(slog.DiscardHandler), Mask: &masker{}})
		wantCode(t, err, ferry.EFORBIDDEN, "refused by the address policy", "loopback", "--clone-allow")
	}
	if n := e.srv.Requests.Load(); n != 0 {
		t.Errorf("the loopback git server received %d requests", n)
	}
	// Allowed by the operator's range, the same clone works.
	if _, _, err := cloneInto(t, e, e.url+r.Path, r.Commits[0], ""); err != nil {
		t.Fatal(err)
	}
}

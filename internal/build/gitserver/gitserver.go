// Package gitserver serves bare repositories over git's smart-HTTP protocol through the real `git http-backend`,
// for tests that clone the way builds do against GitHub: by SHA, by branch, with an installation token.
package gitserver

import (
	"crypto/subtle"
	"fmt"
	"io"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
)

// Server is an http.Handler over the bare repositories in Root ("<Root>/<owner>/<name>.git" serves
// "/<owner>/<name>.git"). With a Token, every request must authenticate the way GitHub accepts installation
// tokens: Basic auth with user x-access-token and the token as password.
type Server struct {
	Root  string
	Token string
	// Requests counts the requests served, so tests can tell that a clone went over HTTP.
	Requests atomic.Int64
	// Refused counts requests rejected for missing or wrong credentials.
	Refused atomic.Int64
	git     string
}

// New returns a server for root; it fails when git is not installed.
func New(root, token string) (*Server, error) {
	git, err := exec.LookPath("git")
	if err != nil {
		return nil, fmt.Errorf("git http-backend needs git: %w", err)
	}
	return &Server{Root: root, Token: token, git: git}, nil
}

// ServeHTTP checks the credentials and hands the request to git http-backend.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.Requests.Add(1)
	if s.Token != "" {
		user, pass, ok := r.BasicAuth()
		if !ok || user != "x-access-token" || subtle.ConstantTimeCompare([]byte(pass), []byte(s.Token)) != 1 {
			s.Refused.Add(1)
			w.Header().Set("WWW-Authenticate", `Basic realm="ferry test git"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
	}
	h := &cgi.Handler{
		Path: s.git,
		Args: []string{"http-backend"},
		Env: []string{
			"GIT_PROJECT_ROOT=" + s.Root,
			"GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_NOSYSTEM=1",
			"GIT_CONFIG_GLOBAL=/dev/null",
			"HOME=" + os.TempDir(),
		},
		InheritEnv: []string{"PATH"},
		Stderr:     io.Discard, // http-backend complains about every missing repository the tests ask for
	}
	h.ServeHTTP(w, r)
}

// Repo is a fixture repository made by CreateRepo.
type Repo struct {
	// Bare is the bare repository's folder on disk (it also works as a local path or file:// URL).
	Bare string
	// Path is the URL path under the server ("/owner/name.git").
	Path string
	// Commits are the ids of the commits pushed, oldest first.
	Commits []string
}

// CreateRepo makes <Root>/<name>.git with one commit per entry of commits (each a map of path to contents,
// applied on top of the previous commit), on branch main, plus any extra branches pointing at the last commit.
func (s *Server) CreateRepo(name string, commits []map[string]string, branches ...string) (*Repo, error) {
	return CreateRepo(s.Root, name, commits, branches...)
}

// CreateRepo is Server.CreateRepo without a server, for local-path clones.
func CreateRepo(root, name string, commits []map[string]string, branches ...string) (*Repo, error) {
	work, err := os.MkdirTemp("", "gitserver-work-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	bare := filepath.Join(root, filepath.FromSlash(name)+".git")
	env := append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Ferry Test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Ferry Test", "GIT_COMMITTER_EMAIL=test@example.com")
	git := func(dir string, args ...string) (string, error) {
		cmd := exec.Command("git", args...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out)), nil
	}
	if err := os.MkdirAll(filepath.Dir(bare), 0o755); err != nil {
		return nil, err
	}
	if _, err := git(root, "init", "-q", "--bare", "-b", "main", bare); err != nil {
		return nil, err
	}
	if _, err := git(work, "init", "-q", "-b", "main"); err != nil {
		return nil, err
	}
	repo := &Repo{Bare: bare, Path: "/" + filepath.ToSlash(name) + ".git"}
	for i, files := range commits {
		for p, body := range files {
			full := filepath.Join(work, filepath.FromSlash(p))
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				return nil, err
			}
			if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
				return nil, err
			}
		}
		if _, err := git(work, "add", "-A"); err != nil {
			return nil, err
		}
		if _, err := git(work, "commit", "-q", "--allow-empty", "-m", fmt.Sprintf("commit %d", i+1)); err != nil {
			return nil, err
		}
		sha, err := git(work, "rev-parse", "HEAD")
		if err != nil {
			return nil, err
		}
		repo.Commits = append(repo.Commits, sha)
	}
	refspecs := []string{"main:main"}
	for _, b := range branches {
		refspecs = append(refspecs, "main:"+b)
	}
	if _, err := git(work, append([]string{"push", "-q", bare}, refspecs...)...); err != nil {
		return nil, err
	}
	return repo, nil
}

package projects

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"
	"unicode"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
)

// validateGitURL checks a repository URL and returns it cleaned (a local path made absolute).
func (s *Service) validateGitURL(raw string) (string, error) {
	u := strings.TrimSpace(raw)
	switch {
	case u == "":
		return "", ferry.Errorf(ferry.EINVALID, "no git URL given: pass the repository's URL, for example https://github.com/owner/site.git")
	case len(u) > MaxGitURL:
		return "", ferry.Errorf(ferry.ETOOLARGE, "the git URL is longer than %d characters", MaxGitURL)
	case strings.IndexFunc(u, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return "", ferry.Errorf(ferry.EINVALID, "the git URL %q contains spaces or control characters", u)
	case strings.HasPrefix(u, "-"):
		return "", ferry.Errorf(ferry.EINVALID, "the git URL %q starts with '-'", u)
	}
	if strings.HasPrefix(u, "/") || strings.HasPrefix(u, "./") || strings.HasPrefix(u, "../") || strings.HasPrefix(u, "file://") {
		return s.localRepo(u)
	}
	if !strings.Contains(u, "://") {
		if host, p, ok := strings.Cut(u, ":"); ok && strings.Contains(host, "@") { // git@github.com:owner/repo.git
			h := host[strings.Index(host, "@")+1:]
			return "", ferry.Errorf(ferry.EINVALID, "SSH URLs need keys that Ferry does not hold; use the public https URL, for example https://%s/%s", h, strings.TrimPrefix(p, "/"))
		}
		return "", ferry.Errorf(ferry.EINVALID, "%q is not a git URL: use https://HOST/OWNER/REPO(.git)", u)
	}
	pu, err := url.Parse(u)
	if err != nil {
		return "", ferry.Errorf(ferry.EINVALID, "%q is not a valid URL: use https://HOST/OWNER/REPO(.git)", u)
	}
	switch pu.Scheme {
	case "https", "http", "git":
	case "ssh":
		return "", ferry.Errorf(ferry.EINVALID, "SSH URLs need keys that Ferry does not hold; use the repository's public https URL")
	default:
		return "", ferry.Errorf(ferry.EINVALID, "git URLs must start with https://, http:// or git:// (got %q)", pu.Scheme+"://")
	}
	switch {
	case pu.Host == "" || pu.Hostname() == "":
		return "", ferry.Errorf(ferry.EINVALID, "the git URL %q has no host", u)
	case pu.User != nil:
		return "", ferry.Errorf(ferry.EINVALID, "remove the user name or password from the git URL: Ferry builds public repositories, and a credential in a URL would be stored and shown in clear")
	case strings.Trim(pu.Path, "/") == "":
		return "", ferry.Errorf(ferry.EINVALID, "the git URL %q names no repository: use https://HOST/OWNER/REPO(.git)", u)
	case pu.RawQuery != "" || pu.Fragment != "":
		return "", ferry.Errorf(ferry.EINVALID, "the git URL %q has a query or fragment; pass the plain repository URL", u)
	}
	return pu.String(), nil
}

// localRepo accepts a local repository in dev (AllowLocalRepos) and returns its absolute path.
func (s *Service) localRepo(u string) (string, error) {
	if !s.cfg.AllowLocalRepos {
		return "", ferry.Errorf(ferry.EINVALID, "local repositories (%q) can be deployed only with `ferry dev`; push the repository somewhere public and pass its https URL", u)
	}
	p := u
	if strings.HasPrefix(u, "file://") {
		pu, err := url.Parse(u)
		if err != nil || (pu.Host != "" && pu.Host != "localhost") {
			return "", ferry.Errorf(ferry.EINVALID, "%q is not a file:// URL of this machine (use file:///path/to/repo)", u)
		}
		p = pu.Path
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", ferry.Errorf(ferry.EINVALID, "local repository %q: %w", u, err)
	}
	if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
		return "", ferry.Errorf(ferry.EINVALID, "local repository %s does not exist or is not a folder", abs)
	}
	return abs, nil
}

// repoBaseName is the last path segment of a repository URL without ".git": the default project name.
func repoBaseName(u string) string {
	if pu, err := url.Parse(u); err == nil && pu.Scheme != "" {
		u = pu.Path
	}
	return strings.TrimSuffix(path.Base(strings.TrimRight(filepath.ToSlash(u), "/")), ".git")
}

// validateBranch applies git's ref-name rules that matter here, and Ferry's length bound.
func validateBranch(b string) error {
	switch {
	case b == "":
		return ferry.Errorf(ferry.EINVALID, "the branch name is empty")
	case len(b) > MaxBranch:
		return ferry.Errorf(ferry.ETOOLARGE, "the branch name is longer than %d characters", MaxBranch)
	case strings.HasPrefix(b, "-") || strings.HasPrefix(b, "/") || strings.HasSuffix(b, "/") ||
		strings.HasSuffix(b, ".lock") || strings.HasSuffix(b, ".") || strings.Contains(b, "..") ||
		strings.Contains(b, "//") || strings.Contains(b, "@{") || strings.ContainsAny(b, " ~^:?*[\\\x7f") ||
		strings.IndexFunc(b, unicode.IsControl) >= 0:
		return ferry.Errorf(ferry.EINVALID, "%q is not a valid git branch name", b)
	}
	return nil
}

var commitRE = regexp.MustCompile(`^[0-9a-f]{40}([0-9a-f]{24})?$`)

// validateCommit requires a full commit id: builds clone by SHA, and a short one is ambiguous.
func validateCommit(c string) error {
	if !commitRE.MatchString(c) {
		return ferry.Errorf(ferry.EINVALID, "commit %q is not a full commit SHA (40 lowercase hex characters; `git rev-parse HEAD` prints it)", c)
	}
	return nil
}

func validateSettings(s Settings) error {
	for name, v := range map[string]*string{"installCommand": s.Overrides.InstallCommand, "buildCommand": s.Overrides.BuildCommand} {
		if v != nil && len(*v) > MaxCommand {
			return ferry.Errorf(ferry.ETOOLARGE, "overrides.%s is longer than %d characters", name, MaxCommand)
		}
		if v != nil && strings.ContainsAny(*v, "\x00") {
			return ferry.Errorf(ferry.EINVALID, "overrides.%s contains a NUL character", name)
		}
	}
	for name, v := range map[string]*string{"rootDirectory": s.Overrides.RootDirectory, "outputDirectory": s.Overrides.OutputDirectory} {
		if v == nil {
			continue
		}
		p := *v
		switch {
		case len(p) > MaxPath:
			return ferry.Errorf(ferry.ETOOLARGE, "overrides.%s is longer than %d characters", name, MaxPath)
		case strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\\\x00") || path.Clean(p) == ".." ||
			strings.HasPrefix(path.Clean(p), "../"):
			return ferry.Errorf(ferry.EINVALID, "overrides.%s %q must be a relative folder inside the repository, like \"site\" or \"dist\"", name, p)
		}
	}
	if s.RequireForkApproval && !s.BuildForks {
		return ferry.Errorf(ferry.EINVALID, "requireForkApproval needs buildForks: approval only matters for fork builds")
	}
	return s.Retention.Validate()
}

// lsRemote is the default ResolveRef: `git ls-remote` of the branch, anonymously or with an installation
// token sent in a header taken from the environment (never argv, which other users can read).
func (s *Service) lsRemote(ctx context.Context, p *store.Project, branch string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	allowed := "https:http:git"
	if s.cfg.AllowLocalRepos {
		allowed += ":file"
	}
	cmd := exec.CommandContext(ctx, "git", "ls-remote", "--", p.CloneURL, "refs/heads/"+branch)
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=", "SSH_ASKPASS=", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_ALLOW_PROTOCOL="+allowed, "GIT_PROTOCOL_FROM_USER=0")
	if p.InstallationID != 0 && s.cfg.Tokens != nil {
		tok, err := s.cfg.Tokens(ctx, p.InstallationID)
		if err != nil {
			return "", err
		}
		basic := base64.StdEncoding.EncodeToString([]byte("x-access-token:" + tok))
		cmd.Env = append(cmd.Env, "GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=http.extraHeader",
			"GIT_CONFIG_VALUE_0=Authorization: Basic "+basic)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", ferry.Errorf(ferry.EUNAVAILABLE, "look up branch %s of %s: the repository did not answer within 30s", branch, p.CloneURL)
		}
		msg := strings.TrimSpace(stderr.String())
		if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
			msg = msg[i+1:]
		}
		return "", ferry.Errorf(ferry.EINVALID, "look up branch %s of %s: %s (is the repository public, and its URL right?)", branch, p.CloneURL, msg)
	}
	for _, line := range strings.Split(stdout.String(), "\n") {
		sha, ref, ok := strings.Cut(line, "\t")
		if ok && ref == "refs/heads/"+branch && commitRE.MatchString(sha) {
			return sha, nil
		}
	}
	return "", ferry.Errorf(ferry.ENOTFOUND, "branch %q does not exist in %s", branch, p.CloneURL)
}

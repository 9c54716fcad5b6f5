package projects

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/netpolicy"
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
	case "https":
	case "http":
		if !s.cfg.AllowInsecureGit {
			return "", ferry.Errorf(ferry.EINVALID, "git URLs must use https:// (http:// only under `ferry dev`, or when the operator passes --git-allow-http)")
		}
	case "git":
		return "", ferry.Errorf(ferry.EINVALID, "git:// URLs are not supported: use the repository's https:// URL")
	case "ssh":
		return "", ferry.Errorf(ferry.EINVALID, "SSH URLs need keys that Ferry does not hold; use the repository's public https URL")
	default:
		return "", ferry.Errorf(ferry.EINVALID, "git URLs must start with https:// (got %q)", pu.Scheme+"://")
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
	case strings.ContainsAny(pu.Hostname(), "%_"):
		return "", ferry.Errorf(ferry.EINVALID, "the git URL %q has an invalid host name", u)
	}
	// An address written in the URL (in any spelling) is checked now; a name is resolved and checked each time
	// git is run, since what it resolves to can change.
	if a, ok := literalAddr(pu.Hostname()); ok {
		if err := s.cfg.GitPolicy.Check(a); err != nil {
			s.cfg.Logger.Info("git URL refused", "url", pu.String(), "err", err)
			return "", gitUnreadable(pu.String())
		}
	}
	return pu.String(), nil
}

// gitUnreadable is the one error for a repository that cannot be read over the network, whatever the reason
// (refused address, no such host, closed port, timeout, HTTP error, redirect): distinct texts would let users
// map the host's and the private network's ports through the app. The reason goes to the server's log.
func gitUnreadable(u string) error {
	return ferry.Errorf(ferry.EINVALID, "cannot read the repository at %s: check the URL and that the App can access it", u)
}

// literalAddr reads a host that is an IP address in any spelling git's resolver accepts (2130706433, 0x7f.1,
// [::1]), or a name that is loopback by definition (localhost, *.localhost, RFC 6761).
func literalAddr(host string) (netip.Addr, bool) {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return a.Unmap(), true
	}
	if a, ok := netpolicy.ParseLegacyIPv4(host); ok {
		return a, true
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return netip.AddrFrom4([4]byte{127, 0, 0, 1}), true
	}
	return netip.Addr{}, false
}

// gitResolve resolves the host of a network git URL and checks every address against GitPolicy, returning
// curl's --resolve entry that pins git to exactly those addresses (so that a second DNS answer cannot lead it
// elsewhere).
func (s *Service) gitResolve(ctx context.Context, pu *url.URL) (string, error) {
	host := pu.Hostname()
	port := pu.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[pu.Scheme]
	}
	var addrs []netip.Addr
	if a, ok := literalAddr(host); ok {
		addrs = []netip.Addr{a}
	} else {
		var r HostResolver = net.DefaultResolver
		if s.cfg.Resolver != nil {
			r = s.cfg.Resolver
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		found, err := r.LookupNetIP(rctx, "ip", host)
		if err != nil || len(found) == 0 {
			return "", fmt.Errorf("resolve %s: %v", host, err)
		}
		addrs = found
	}
	list := make([]string, 0, len(addrs))
	for _, a := range addrs {
		if err := s.cfg.GitPolicy.Check(a); err != nil {
			return "", fmt.Errorf("host %s: %w", host, err)
		}
		if a.Unmap().Is4() {
			list = append(list, a.Unmap().String())
		} else {
			list = append(list, "["+a.String()+"]")
		}
	}
	return host + ":" + port + ":" + strings.Join(list, ","), nil
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
	if root := s.cfg.LocalReposDir; root != "" && !insideDir(root, abs) {
		return "", ferry.Errorf(ferry.EFORBIDDEN, "local repository %s is outside %s, the folder ferry dev deploys local repositories from; move it there or restart ferry dev with --local-repos", abs, root)
	}
	return abs, nil
}

// insideDir reports whether path is root or inside it once symbolic links are resolved on both, so that a link
// inside root to a folder outside it does not pass.
func insideDir(root, path string) bool {
	r, err1 := filepath.EvalSymlinks(root)
	p, err2 := filepath.EvalSymlinks(path)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(r, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
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

// execGit starts git; tests replace it to prove that a refused URL never reaches git.
var execGit = exec.CommandContext

// lsRemote is the default ResolveRef: `git ls-remote` of the branch, anonymously or with an installation
// token sent in a header taken from the environment (never argv, which other users can read).
//
// A network URL is https:// (http:// with AllowInsecureGit); its host is resolved here and every address
// checked against GitPolicy, and git is pinned to those addresses (http.curloptResolve), follows no redirect
// and speaks no other protocol, so neither DNS rebinding, a redirect nor an ext:: or file:: URL leads it past
// the check. Every failure to reach the repository is the same gitUnreadable error.
func (s *Service) lsRemote(ctx context.Context, p *store.Project, branch string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var config [][2]string
	local := !strings.Contains(p.CloneURL, "://")
	if local || strings.HasPrefix(p.CloneURL, "file://") {
		if !s.cfg.AllowLocalRepos {
			return "", ferry.Errorf(ferry.EINVALID, "local repositories (%q) can be deployed only with `ferry dev`", p.CloneURL)
		}
		config = append(config, [2]string{"protocol.allow", "never"}, [2]string{"protocol.file.allow", "always"})
	} else {
		scheme, pin, err := s.checkRemote(ctx, p)
		if err != nil {
			return "", err
		}
		config = append(config, [2]string{"protocol.allow", "never"}, [2]string{"protocol." + scheme + ".allow", "always"},
			[2]string{"http.followRedirects", "false"}, [2]string{"http.curloptResolve", pin})
	}
	config = append(config, [2]string{"credential.helper", ""}, [2]string{"core.askPass", ""})
	if p.InstallationID != 0 && s.cfg.Tokens != nil && !local {
		tok, err := s.cfg.Tokens(ctx, p.InstallationID)
		if err != nil {
			return "", err
		}
		basic := base64.StdEncoding.EncodeToString([]byte("x-access-token:" + tok))
		config = append(config, [2]string{"http.extraHeader", "Authorization: Basic " + basic})
	}
	cmd := execGit(ctx, "git", "ls-remote", "--", p.CloneURL, "refs/heads/"+branch)
	cmd.Env = gitEnv(config)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		s.cfg.Logger.InfoContext(ctx, "git ls-remote failed", "url", p.CloneURL, "err", err, "stderr", msg, "timeout", ctx.Err() != nil)
		return "", gitUnreadable(p.CloneURL)
	}
	for _, line := range strings.Split(stdout.String(), "\n") {
		sha, ref, ok := strings.Cut(line, "\t")
		if ok && ref == "refs/heads/"+branch && commitRE.MatchString(sha) {
			return sha, nil
		}
	}
	return "", ferry.Errorf(ferry.ENOTFOUND, "branch %q does not exist in %s", branch, p.CloneURL)
}

// checkRemote checks a project's network git URL as lsRemote does (scheme, then every address its host
// resolves to) and returns its scheme and curl's resolve entry; any refusal is gitUnreadable. "Deploy now" of a
// given commit and redeploys run it too, so that no build is queued for a URL that leads to a refused address.
func (s *Service) checkRemote(ctx context.Context, p *store.Project) (scheme, pin string, err error) {
	pu, err := url.Parse(p.CloneURL)
	if err != nil || !(pu.Scheme == "https" || pu.Scheme == "http" && s.cfg.AllowInsecureGit) || pu.User != nil {
		s.cfg.Logger.InfoContext(ctx, "git URL refused", "url", p.CloneURL, "why", "not an allowed https URL")
		return "", "", gitUnreadable(p.CloneURL)
	}
	if pin, err = s.gitResolve(ctx, pu); err != nil {
		s.cfg.Logger.InfoContext(ctx, "git URL refused", "url", p.CloneURL, "err", err)
		return "", "", gitUnreadable(p.CloneURL)
	}
	return pu.Scheme, pin, nil
}

// checkBuildable is checkRemote for a project about to be built; local repositories are AllowLocalRepos's
// business (validateGitURL, the builder).
func (s *Service) checkBuildable(ctx context.Context, p *store.Project) error {
	if err := buildable(p); err != nil { // the App was uninstalled for its repository
		return err
	}
	if !strings.Contains(p.CloneURL, "://") || strings.HasPrefix(p.CloneURL, "file://") {
		return nil
	}
	_, _, err := s.checkRemote(ctx, p)
	return err
}

// gitEnv is the app's environment without git's own variables (which could point git at other config, hooks
// or transports), plus config entries passed the way that keeps them out of argv.
func gitEnv(config [][2]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GIT_") {
			env = append(env, kv)
		}
	}
	env = append(env, "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=", "SSH_ASKPASS=", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_PROTOCOL_FROM_USER=0", "GIT_CONFIG_COUNT="+strconv.Itoa(len(config)))
	for i, kv := range config {
		env = append(env, fmt.Sprintf("GIT_CONFIG_KEY_%d=%s", i, kv[0]), fmt.Sprintf("GIT_CONFIG_VALUE_%d=%s", i, kv[1]))
	}
	return env
}

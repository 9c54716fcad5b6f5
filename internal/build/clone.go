package build

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/netpolicy"
)

// cloneParams says what to check out where.
type cloneParams struct {
	Repo  string // https URL, file:// URL or local path
	Ref   string // full SHA, branch or tag; "" for the remote's HEAD
	Token string // for https: sent as x-access-token, only through git's environment
	Dir   string // created by clone
	Home  string // an empty folder git may use as HOME
	// Policy is what an http(s) clone may connect to: git reaches the network only through an egress proxy
	// that enforces it, on every connection, redirect and submodule.
	Policy netpolicy.Policy
	Log    *slog.Logger
	Mask   *masker
}

// clone fetches exactly one commit (depth 1) and checks it out, with submodules. The token reaches git only
// through the environment of the git processes, as an http.<origin>.extraHeader scoped to the repository's
// host, so it is never in argv, in .git/config, in the build's environment, or sent to a submodule's host.
// It returns the commit id that was checked out.
func clone(ctx context.Context, p cloneParams) (string, error) {
	repo, isHTTP, err := normalizeRepo(p.Repo)
	if err != nil {
		return "", err
	}
	env := gitEnv(p.Home, !isHTTP)
	var config [][2]string
	var px *cloneProxy
	if isHTTP {
		if px, err = startCloneProxy(p.Policy, p.Log); err != nil {
			return "", err
		}
		defer px.Close()
		if p.Mask != nil {
			p.Mask.add(px.token)
		}
		config = append(config, [2]string{"http.proxy", px.url}, [2]string{"http.proxyAuthMethod", "basic"})
	}
	if p.Token != "" && isHTTP {
		u, _ := url.Parse(repo)
		origin := u.Scheme + "://" + u.Host + "/"
		basic := base64.StdEncoding.EncodeToString([]byte("x-access-token:" + p.Token))
		config = append(config, [2]string{"http." + origin + ".extraHeader", "Authorization: Basic " + basic})
	}
	env = append(env, fmt.Sprintf("GIT_CONFIG_COUNT=%d", len(config)))
	for i, kv := range config {
		env = append(env, fmt.Sprintf("GIT_CONFIG_KEY_%d=%s", i, kv[0]), fmt.Sprintf("GIT_CONFIG_VALUE_%d=%s", i, kv[1]))
	}
	if !isHTTP {
		if env, err = trustLocalRepo(env, repo, p.Home); err != nil {
			return "", err
		}
	}
	ref := p.Ref
	if ref == "" {
		ref = "HEAD"
	}
	if strings.HasPrefix(ref, "-") {
		return "", ferry.Errorf(ferry.EINVALID, "ref %q: a ref cannot start with '-'", ref)
	}
	if err := os.MkdirAll(p.Dir, 0o755); err != nil {
		return "", fmt.Errorf("create checkout folder: %w", err)
	}
	git := func(args ...string) (string, error) {
		return runGit(ctx, p.Dir, env, p.Log, p.Mask, args...)
	}
	if _, err := git("init", "-q"); err != nil {
		return "", ferry.Errorf(ferry.EINTERNAL, "git init: %w", err)
	}
	if _, err := git("remote", "add", "origin", repo); err != nil {
		return "", ferry.Errorf(ferry.EINTERNAL, "git remote add: %w", err)
	}
	p.Log.Info("fetching " + ref + " from " + redactURL(repo))
	if out, err := git("fetch", "--depth=1", "--no-tags", "--recurse-submodules=no", "origin", ref); err != nil {
		if why := refusal(px); why != "" {
			return "", ferry.Errorf(ferry.EFORBIDDEN, "fetch %s from %s refused by the address policy (%s); an operator allows a range with --clone-allow or --egress-allow", ref, redactURL(repo), why)
		}
		return "", fetchError(repo, ref, out, err)
	}
	if _, err := git("-c", "advice.detachedHead=false", "checkout", "-q", "--detach", "FETCH_HEAD"); err != nil {
		return "", ferry.Errorf(ferry.EBUILD, "check out %s: %w", ref, err)
	}
	commit, err := git("rev-parse", "HEAD")
	if err != nil {
		return "", ferry.Errorf(ferry.EINTERNAL, "git rev-parse: %w", err)
	}
	commit = strings.TrimSpace(commit)
	if _, err := os.Stat(filepath.Join(p.Dir, ".gitmodules")); err == nil {
		p.Log.Info("updating submodules")
		if out, err := git("submodule", "update", "--init", "--recursive", "--depth=1"); err != nil {
			if why := refusal(px); why != "" {
				return "", ferry.Errorf(ferry.EFORBIDDEN, "fetch submodules: refused by the address policy (%s)", why)
			}
			return "", ferry.Errorf(ferry.EBUILD, "fetch submodules: %s", lastLine(out, err))
		}
	}
	p.Log.Info("checked out " + commit)
	return commit, nil
}

// refusal is the clone proxy's last refusal, or "" when it refused nothing (or there is none).
func refusal(px *cloneProxy) string {
	if px == nil {
		return ""
	}
	return px.proxy.LastRefusal()
}

// normalizeRepo accepts an https (or http) URL, a file:// URL or a local path, and refuses the rest: git's
// ext:: and ssh transports have no place in a build that only has an https token.
func normalizeRepo(repo string) (string, bool, error) {
	if repo == "" {
		return "", false, ferry.Errorf(ferry.EINVALID, "--repo is required (an https clone URL, a file:// URL or a local path)")
	}
	if strings.Contains(repo, "://") {
		u, err := url.Parse(repo)
		if err != nil {
			return "", false, ferry.Errorf(ferry.EINVALID, "--repo %q: %v", redactURL(repo), err)
		}
		switch u.Scheme {
		case "https", "http":
			if u.User != nil {
				return "", false, ferry.Errorf(ferry.EINVALID, "--repo must not carry credentials; pass the token with --token-file")
			}
			return repo, true, nil
		case "file":
			return repo, false, nil
		}
		return "", false, ferry.Errorf(ferry.EINVALID, "--repo %q: scheme %q is not supported; use https://, file:// or a local path", repo, u.Scheme)
	}
	if strings.Contains(repo, "::") || strings.HasPrefix(repo, "-") || strings.Contains(repo, "@") && strings.Contains(repo, ":") {
		return "", false, ferry.Errorf(ferry.EINVALID, "--repo %q: use an https:// URL, a file:// URL or a local path", repo)
	}
	abs, err := filepath.Abs(repo)
	if err != nil {
		return "", false, ferry.Errorf(ferry.EINVALID, "--repo %q: %v", repo, err)
	}
	if _, err := os.Stat(abs); err != nil {
		return "", false, ferry.Errorf(ferry.ENOTFOUND, "repository %s does not exist", abs)
	}
	return abs, false, nil
}

// trustLocalRepo lets git read a local repository that another user owns, which is what a Docker action sees:
// it runs as root over a checkout that belongs to the runner's user, and git refuses it ("dubious
// ownership"). git only takes safe.directory from protected config, and git 2.39 ignores `-c safe.directory`,
// so the exception goes in a throwaway global config in home (our temporary folder, never the repository),
// naming that one repository and nothing else.
func trustLocalRepo(env []string, repo, home string) ([]string, error) {
	dir := repo
	if strings.HasPrefix(repo, "file://") {
		u, err := url.Parse(repo)
		if err != nil {
			return nil, ferry.Errorf(ferry.EINVALID, "--repo %q: %v", repo, err)
		}
		dir = u.Path
	}
	dirs := []string{dir}
	if real, err := filepath.EvalSymlinks(dir); err == nil && real != dir {
		dirs = append(dirs, real)
	}
	var cfg strings.Builder
	cfg.WriteString("[safe]\n")
	for _, d := range dirs {
		for _, v := range []string{d, filepath.Join(d, ".git")} {
			fmt.Fprintf(&cfg, "\tdirectory = %s\n", quoteGitConfig(v))
		}
	}
	path := filepath.Join(home, "gitconfig")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o600); err != nil {
		return nil, ferry.Errorf(ferry.EINTERNAL, "write git config: %w", err)
	}
	out := make([]string, 0, len(env))
	for _, e := range env {
		if strings.HasPrefix(e, "GIT_CONFIG_GLOBAL=") {
			e = "GIT_CONFIG_GLOBAL=" + path
		}
		out = append(out, e)
	}
	return out, nil
}

// quoteGitConfig writes s as a git config value: in double quotes, with backslashes and quotes escaped.
func quoteGitConfig(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`).Replace(s) + `"`
}

// gitEnv is a small, fixed environment for git: no prompts, no user or system config (a credential helper in
// ~/.gitconfig must not answer for a build), no hooks of ours, and no ferry secrets. The one global setting a
// build may get is trustLocalRepo's safe.directory. The host's proxy variables pass only to a local clone
// (which uses none); an http(s) clone goes through Ferry's egress proxy, and a host NO_PROXY must not let it
// connect around that proxy.
func gitEnv(home string, hostProxy bool) []string {
	env := []string{
		"HOME=" + home,
		"PATH=" + os.Getenv("PATH"),
		"LANG=C",
		"LC_ALL=C",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_ASKPASS=true",
		"SSH_ASKPASS=true",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_PROTOCOL_FROM_USER=0",
		// Submodule URLs come from the repository: no ext::, and no file:// (which could read the host).
		"GIT_ALLOW_PROTOCOL=https:http",
	}
	for _, k := range []string{"HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR", "GIT_SSL_CAINFO"} {
		if strings.Contains(strings.ToLower(k), "proxy") && !hostProxy {
			continue
		}
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// runGit runs one git command and logs its stderr as it finishes (git's output is short); it returns stdout,
// or the stderr text inside the error.
func runGit(ctx context.Context, dir string, env []string, log *slog.Logger, m *masker, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = env
	if strings.HasPrefix(args[0], "fetch") || args[0] == "submodule" {
		// The top-level fetch of a local repository needs the file transport; submodules never get it.
		cmd.Env = allowFileForTopLevel(env, args)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			log.Info(m.mask(l))
		}
	}
	if err != nil {
		msg := m.mask(strings.TrimSpace(stderr.String()))
		if ctx.Err() != nil {
			return msg, ctx.Err()
		}
		return msg, fmt.Errorf("git %s: %w", args[0], err)
	}
	return stdout.String(), nil
}

// allowFileForTopLevel lets `git fetch` use the file transport for the repository itself (local builds), while
// submodule commands keep the https-only rule.
func allowFileForTopLevel(env []string, args []string) []string {
	if args[0] != "fetch" {
		return env
	}
	out := make([]string, 0, len(env))
	for _, e := range env {
		if strings.HasPrefix(e, "GIT_ALLOW_PROTOCOL=") {
			e = "GIT_ALLOW_PROTOCOL=https:http:file"
		}
		out = append(out, e)
	}
	return out
}

// fetchError tells the user's mistakes (no such repository, no such ref, a refused token) from outages, which
// the queue retries.
func fetchError(repo, ref, stderr string, err error) error {
	low := strings.ToLower(stderr)
	where := redactURL(repo)
	switch {
	case strings.Contains(low, "dubious ownership"):
		// trustLocalRepo should prevent it; if git still refuses (a repository inside another one's folder,
		// say), say so rather than "not found".
		return ferry.Errorf(ferry.EINVALID, "git refuses to read %s because another user owns it (safe.directory); run the build as its owner", where)
	case strings.Contains(low, "couldn't find remote ref"), strings.Contains(low, "not our ref"),
		strings.Contains(low, "no such remote ref"), strings.Contains(low, "unadvertised object"):
		hint := ""
		if regexp.MustCompile(`^[0-9a-f]{4,39}$`).MatchString(ref) {
			hint = " (a commit must be given by its full 40-character id)"
		}
		return ferry.Errorf(ferry.ENOTFOUND, "ref %q not found in %s%s", ref, where, hint)
	case strings.Contains(low, "does not appear to be a git repository"), strings.Contains(low, "not found"),
		strings.Contains(low, "no such file or directory"):
		return ferry.Errorf(ferry.ENOTFOUND, "repository %s not found (or the token cannot see it): %s", where, lastLine(stderr, nil))
	case strings.Contains(low, "authentication failed"), strings.Contains(low, "could not read username"),
		// git prints the HTTP status as "The requested URL returned error: 403"; match that phrase, never the bare
		// number, which a port or path may contain (":34035" is no refusal).
		strings.Contains(low, "returned error: 401"), strings.Contains(low, "returned error: 403"):
		return ferry.Errorf(ferry.EUNAUTHORIZED, "repository %s refused the credentials; check --token-file: %s", where, lastLine(stderr, nil))
	case err == context.Canceled || err == context.DeadlineExceeded:
		return ferry.Errorf(ferry.EUNAVAILABLE, "fetch %s from %s: %w", ref, where, err)
	}
	return ferry.Errorf(ferry.EUNAVAILABLE, "fetch %s from %s: %s: %w", ref, where, lastLine(stderr, nil), err)
}

func lastLine(s string, err error) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if s == "" && err != nil {
		return err.Error()
	}
	return s
}

// redactURL drops any user info from a URL before it is logged.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	u.User = nil
	return u.String()
}

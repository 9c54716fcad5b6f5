package projects

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/build/gitserver"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/netpolicy"
)

// gitCalls replaces execGit for the package's tests, counting how often git was started.
var gitCalls atomic.Int64

func init() {
	execGit = func(ctx context.Context, name string, args ...string) *exec.Cmd {
		gitCalls.Add(1)
		return exec.CommandContext(ctx, name, args...)
	}
}

func gitService(policy netpolicy.Policy, insecure, local bool) *Service {
	return &Service{cfg: Config{GitPolicy: policy, AllowInsecureGit: insecure, AllowLocalRepos: local,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}}
}

// countingListener is a loopback listener that records every connection it is offered.
func countingListener(t *testing.T) (port string, conns *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns = new(atomic.Int64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			c.Close()
		}
	}()
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	return port, conns
}

// TestGitURLSSRF is issue 11's item 5: git URLs that lead to the host itself, the cloud metadata endpoint or the
// private network are refused, whichever way the address is spelled, and git is never started for them. The
// loopback spellings carry the port of a real listener, which must see no connection; the other ranges are
// checked without any traffic (the policy refuses before git runs).
func TestGitURLSSRF(t *testing.T) {
	port, conns := countingListener(t)
	s := gitService(netpolicy.Policy{}, false, false)
	uniform := func(u string) string {
		return "cannot read the repository at " + u + ": check the URL and that the App can access it"
	}
	for _, host := range []string{"127.0.0.1", "[::1]", "2130706433", "0x7f.1", "127.1", "0177.0.0.1", "[::ffff:127.0.0.1]",
		"localhost", "LocalHost.", "app.localhost", "169.254.169.254", "10.0.0.1", "172.16.0.1", "192.168.1.1",
		"[fd00::1]", "[fe80::1]", "0.0.0.0", "100.64.0.1", "[64:ff9b::7f00:1]"} {
		u := "https://" + host + ":" + port + "/acme/site.git"
		before := gitCalls.Load()
		// At creation: an address written in the URL is refused with the uniform error.
		_, err := s.validateGitURL(u)
		if ferry.ErrorCode(err) != ferry.EINVALID || !strings.Contains(err.Error(), "cannot read the repository at") {
			t.Errorf("create with %s: %v, want the uniform refusal", u, err)
		}
		// At use (a row stored before this check existed): refused before git starts.
		_, err = s.lsRemote(context.Background(), &store.Project{CloneURL: u}, "main")
		if err == nil || ferry.ErrorMessage(err) != uniform(u) {
			t.Errorf("ls-remote of %s: %v, want %q", u, err, uniform(u))
		}
		if gitCalls.Load() != before {
			t.Errorf("%s: git was started", u)
		}
	}
	// Other transports and argument tricks never reach the network either.
	for _, u := range []string{"file:///etc", "file://localhost/etc", "/etc", "ssh://git@127.0.0.1:" + port + "/x.git",
		"git://127.0.0.1:" + port + "/x.git", "ext::sh -c touch% /tmp/pwned", "ext::sh", "--upload-pack=touch /tmp/pwned",
		"-uhttps://example.com/x.git", "http://127.0.0.1:" + port + "/x.git", "https://user@127.0.0.1:" + port + "/x.git",
		"fd::ext::sh", "git@127.0.0.1:x.git",
		// A well-known host name as userinfo before the real (loopback) host, and other spellings of that trick.
		"https://github.com@127.0.0.1:" + port + "/x.git", "https://github.com:443@127.0.0.1:" + port + "/x.git",
		"https://github.com%40127.0.0.1:" + port + "/x.git", "https://github.com\\@127.0.0.1:" + port + "/x.git",
		"https://127.0.0.1:" + port + "#@github.com/x.git", "https://127.0.0.1:" + port + "?@github.com/x.git"} {
		if got, err := s.validateGitURL(u); err == nil {
			t.Errorf("create with %q accepted as %q", u, got)
		}
		before := gitCalls.Load()
		if _, err := s.lsRemote(context.Background(), &store.Project{CloneURL: u}, "main"); err == nil {
			t.Errorf("ls-remote of %q succeeded", u)
		}
		if gitCalls.Load() != before {
			t.Errorf("%q: git was started", u)
		}
	}
	if n := conns.Load(); n != 0 {
		t.Fatalf("the loopback listener saw %d connections", n)
	}
}

// TestGitURLUniformError: a closed port, an open port that is not a git server and a host that does not
// resolve all give the same error text, so that users cannot map ports through the app. Loopback is allowed
// here (as under ferry dev) so that git really runs against local ports.
func TestGitURLUniformError(t *testing.T) {
	openPort, conns := countingListener(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, closedPort, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	s := gitService(netpolicy.Policy{AllowLoopback: true}, true, false)
	var msgs []string
	for _, u := range []string{"http://127.0.0.1:" + openPort + "/x.git", "http://127.0.0.1:" + closedPort + "/x.git",
		"http://no-such-host.invalid/x.git"} {
		_, err := s.lsRemote(context.Background(), &store.Project{CloneURL: u}, "main")
		if err == nil {
			t.Fatalf("%s: no error", u)
		}
		msgs = append(msgs, strings.Replace(ferry.ErrorMessage(err), u, "URL", 1))
	}
	for _, m := range msgs[1:] {
		if m != msgs[0] {
			t.Fatalf("errors differ: %q", msgs)
		}
	}
	if conns.Load() == 0 {
		t.Fatal("git never reached the open port: the comparison proves nothing")
	}
}

// TestGitDevPolicy: under the dev policy (loopback and http allowed) a real smart-HTTP git server on loopback
// answers, and the pinned address is the one git uses.
func TestGitDevPolicy(t *testing.T) {
	git, err := gitserver.New(t.TempDir(), "")
	if err != nil {
		t.Skipf("git is not installed: %v", err)
	}
	hs := httptest.NewServer(git)
	t.Cleanup(hs.Close)
	repo, err := git.CreateRepo("acme/site", []map[string]string{{"index.html": "hi"}})
	if err != nil {
		t.Fatal(err)
	}
	dev := gitService(netpolicy.Policy{AllowLoopback: true}, true, true)
	_, port, _ := net.SplitHostPort(hs.Listener.Addr().String())
	for _, u := range []string{hs.URL + repo.Path, "http://localhost:" + port + repo.Path} {
		if _, err := dev.validateGitURL(u); err != nil {
			t.Fatalf("dev create with %s: %v", u, err)
		}
		sha, err := dev.lsRemote(context.Background(), &store.Project{CloneURL: u}, "main")
		if err != nil || sha != repo.Commits[0] {
			t.Fatalf("dev ls-remote of %s: %q, %v; want %s", u, sha, err, repo.Commits[0])
		}
	}
	if _, err := dev.lsRemote(context.Background(), &store.Project{CloneURL: hs.URL + repo.Path}, "nope"); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Fatalf("missing branch: %v, want ENOTFOUND", err)
	}
	// A local repository in dev still works, through the file transport only.
	if sha, err := dev.lsRemote(context.Background(), &store.Project{CloneURL: repo.Bare}, "main"); err != nil || sha != repo.Commits[0] {
		t.Fatalf("dev local repository: %q, %v", sha, err)
	}
	// The same server under the default policy: refused, and the server sees nothing.
	before := git.Requests.Load()
	def := gitService(netpolicy.Policy{}, true, false)
	if _, err := def.lsRemote(context.Background(), &store.Project{CloneURL: hs.URL + repo.Path}, "main"); err == nil {
		t.Fatal("default policy reached a loopback git server")
	}
	// An operator's range opens it again.
	ranged := gitService(netpolicy.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, true, false)
	if sha, err := ranged.lsRemote(context.Background(), &store.Project{CloneURL: hs.URL + repo.Path}, "main"); err != nil || sha != repo.Commits[0] {
		t.Fatalf("with --git-allow-ranges 127.0.0.0/8: %q, %v", sha, err)
	}
	if git.Requests.Load() == before {
		t.Fatal("no request reached the server under the allowed range")
	}
}

// TestGitNoRedirects: git follows no redirect, so a public server cannot send it on to an address the policy
// would refuse.
func TestGitNoRedirects(t *testing.T) {
	target, conns := countingListener(t)
	redirector := httptest.NewServer(nil)
	redirector.Config.Handler = redirectTo("http://127.0.0.1:" + target)
	t.Cleanup(redirector.Close)
	s := gitService(netpolicy.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}, true, false)
	if _, err := s.lsRemote(context.Background(), &store.Project{CloneURL: redirector.URL + "/acme/site.git"}, "main"); err == nil {
		t.Fatal("ls-remote through a redirect succeeded")
	}
	if conns.Load() != 0 {
		t.Fatal("git followed the redirect")
	}
}

func redirectTo(base string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, base+r.URL.RequestURI(), http.StatusFound)
	})
}

// fakeResolver answers from a map, so that tests choose what a name resolves to without any DNS traffic.
type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// TestGitPinnedToCheckedAddress: git connects to the address Ferry resolved and checked, not to whatever its
// own resolver says. The name "vm" is 127.0.0.1 in /etc/hosts here (where nothing listens on the port); Ferry's
// resolver says 127.0.0.2, where the git server is: only a pinned git reaches it.
func TestGitPinnedToCheckedAddress(t *testing.T) {
	git, err := gitserver.New(t.TempDir(), "")
	if err != nil {
		t.Skipf("git is not installed: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no 127.0.0.2 here: %v", err)
	}
	hs := httptest.NewUnstartedServer(git)
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	t.Cleanup(hs.Close)
	repo, err := git.CreateRepo("acme/site", []map[string]string{{"index.html": "hi"}})
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	s := gitService(netpolicy.Policy{AllowLoopback: true}, true, false)
	s.cfg.Resolver = fakeResolver{"vm": {netip.MustParseAddr("127.0.0.2")}, "rebound": {netip.MustParseAddr("127.0.0.2")}}
	sha, err := s.lsRemote(context.Background(), &store.Project{CloneURL: "http://vm:" + port + repo.Path}, "main")
	if err != nil || sha != repo.Commits[0] {
		t.Fatalf("pinned ls-remote: %q, %v", sha, err)
	}
	// A name that resolves to loopback under the default policy: refused, git not started.
	def := gitService(netpolicy.Policy{}, true, false)
	def.cfg.Resolver = s.cfg.Resolver
	before, requests := gitCalls.Load(), git.Requests.Load()
	if _, err := def.lsRemote(context.Background(), &store.Project{CloneURL: "http://rebound:" + port + repo.Path}, "main"); err == nil {
		t.Fatal("a name resolving to loopback was fetched under the default policy")
	}
	if gitCalls.Load() != before || git.Requests.Load() != requests {
		t.Fatal("git ran for a name resolving to loopback")
	}
}

// FuzzValidateGitURL: whatever a user sends, an accepted git URL (default policy, no local repositories) is
// https with a host, never an option, and never a written address that the policy refuses.
func FuzzValidateGitURL(f *testing.F) {
	for _, s := range []string{"https://github.com/acme/site.git", "https://127.0.0.1/x.git", "https://2130706433/x",
		"https://0x7f.1/x", "https://[::ffff:7f00:1]/x", "https://localhost./x", "http://example.com/x", "ext::sh",
		"--upload-pack=x", "https://a@b/c", "https://[fe80::1%25eth0]/x", "HTTPS://EXAMPLE.COM/X", "https://0177.1/x"} {
		f.Add(s)
	}
	s := gitService(netpolicy.Policy{}, false, false)
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := s.validateGitURL(raw)
		if err != nil {
			return
		}
		u, perr := url.Parse(got)
		if perr != nil || u.Scheme != "https" || u.Hostname() == "" || u.User != nil || strings.HasPrefix(got, "-") {
			t.Fatalf("accepted %q as %q", raw, got)
		}
		if a, ok := literalAddr(u.Hostname()); ok && netpolicy.Classify(a) != "" {
			t.Fatalf("accepted %q (a %s address) as %q", raw, netpolicy.Classify(a), got)
		}
		if a, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil && netpolicy.Classify(a) != "" {
			t.Fatalf("accepted %q (a %s address)", raw, netpolicy.Classify(a))
		}
	})
}

package api_test

import (
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ferryhq/ferry/app/store"
)

// TestGitURLSSRFOverAPI is issue 11's item 5 through the API under the default address policy: a project made
// from a git URL on the App's own host is refused with the uniform error, "deploy now" of a project stored with
// such a URL (before the check existed) gets the same error, and a real listener on that address sees no
// connection.
func TestGitURLSSRFOverAPI(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var conns atomic.Int64
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
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	u := h.newUser()
	for _, host := range []string{"127.0.0.1", "2130706433", "0x7f.1", "[::ffff:127.0.0.1]", "localhost"} {
		git := "https://" + host + ":" + port + "/acme/site.git"
		r := h.do(u, "POST", "/api/v1/projects", map[string]any{"gitUrl": git, "name": "probe"})
		code, msg := r.errorCode()
		if r.status != 400 || code != "invalid" || msg != "cannot read the repository at "+git+": check the URL and that the App can access it" {
			t.Errorf("create with %s: %d %s %q, want the uniform 400", git, r.status, code, msg)
		}
	}
	git := "https://127.0.0.1:" + port + "/acme/site.git"
	if _, err := h.st.ProjectCreate(h.ctx, store.ProjectCreateParams{Name: "old-row", CloneURL: git, OwnerID: u.id}); err != nil {
		t.Fatal(err)
	}
	r := h.do(u, "POST", "/api/v1/projects/old-row/deployments", map[string]string{"branch": "main"})
	if code, msg := r.errorCode(); r.status != 400 || msg != "cannot read the repository at "+git+": check the URL and that the App can access it" {
		t.Errorf("deploy now: %d %s %q, want the uniform 400", r.status, code, msg)
	}
	if n := conns.Load(); n != 0 {
		t.Fatalf("the listener on 127.0.0.1 saw %d connections", n)
	}
}

// TestDeployCommitChecksTheURL: "deploy now" of a given commit runs no ls-remote, so the URL is checked on its
// own: a project whose host resolves to loopback (stored before the check, or renamed in DNS since) gets the
// uniform error and no deployment.
func TestDeployCommitChecksTheURL(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	u := h.newUser()
	git := "https://github.com/acme/site.git"
	h.must(u, 201, "POST", "/api/v1/projects", map[string]any{"gitUrl": git, "name": "public"}, nil)
	if _, err := h.st.ProjectCreate(h.ctx, store.ProjectCreateParams{Name: "loop", CloneURL: "https://127.0.0.1:1/x.git", OwnerID: u.id}); err != nil {
		t.Fatal(err)
	}
	sha := strings.Repeat("c", 40)
	r := h.do(u, "POST", "/api/v1/projects/loop/deployments", map[string]string{"commit": sha})
	if _, msg := r.errorCode(); r.status != 400 || !strings.Contains(msg, "cannot read the repository at https://127.0.0.1:1/x.git") {
		t.Errorf("deploy a commit of a loopback URL: %d %s", r.status, r.body)
	}
	if n := h.count(`SELECT count(*) FROM deployments d JOIN projects p ON p.id = d.project_id WHERE p.name = 'loop'`); n != 0 {
		t.Errorf("%d deployments queued for the loopback URL", n)
	}
	h.must(u, 201, "POST", "/api/v1/projects/public/deployments", map[string]string{"commit": sha}, nil)
}

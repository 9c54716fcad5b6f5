package action

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/protect"
)

// TestProtection: the Action protects a project's previews with a password (stored only as a bcrypt hash),
// gives a share link to the protected preview, keeps the key on the next run, and refuses members-only, which
// needs the app.
func TestProtection(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.writeSite(map[string]string{"dist/index.html": "<h1>preview</h1>"})
	branch := func(p map[string]any) {
		p["ref"] = "refs/heads/feature"
		p["repository"].(map[string]any)["default_branch"] = "main"
	}

	res := h.runStep("push", "push/with-new-branch", branch, map[string]string{"protection": "previews"}, nil)
	if ferry.ErrorCode(res.err) != ferry.EINVALID || !strings.Contains(res.err.Error(), "needs the Ferry app") {
		t.Fatalf("members-only without the app: %v", res.err)
	}
	if len(h.manifests()) != 0 {
		t.Fatal("a refused protection still published")
	}

	res = h.runStep("push", "push/with-new-branch", branch, map[string]string{"protection": "previews", "protection-password": "correct horse battery"}, nil)
	if res.err != nil {
		t.Fatalf("ferry action: %v\n%s", res.err, res.log)
	}
	st := h.gw.Open(t, "ferry")
	s, err := protect.Get(t.Context(), st, project)
	if err != nil || s.Mode != protect.Previews || !protect.CheckPassword(s.PasswordHash, "correct horse battery") || s.Members {
		t.Fatalf("protection.json %+v, %v", s, err)
	}
	for _, line := range strings.Split(res.log, "\n") {
		if strings.Contains(line, "correct horse battery") && !strings.HasPrefix(line, "::add-mask::") {
			t.Errorf("the password appears in the log: %s", line)
		}
	}
	share, err := url.Parse(res.outputs["share-url"])
	if err != nil || share.Host != strings.TrimPrefix(res.outputs["url"], "https://") {
		t.Fatalf("share-url %q for url %q", res.outputs["share-url"], res.outputs["url"])
	}
	if !protect.CheckShare(s.Key, share.Hostname(), share.Query().Get("ferry_share"), time.Now()) {
		t.Fatalf("share-url %q does not check", share)
	}

	// The next run keeps the key (share links keep working) and the password.
	res = h.runStep("push", "push/with-new-branch", branch, map[string]string{"protection": "previews"}, nil)
	if res.err != nil {
		t.Fatalf("second run: %v", res.err)
	}
	s2, _ := protect.Get(t.Context(), st, project)
	if s2.KeyID != s.KeyID || s2.PasswordHash != s.PasswordHash {
		t.Fatal("a second run changed the key or the password")
	}

	// Production stays public under previews: no share link for it.
	res = h.runStep("push", "push/with-new-branch", nil, map[string]string{"protection": "previews"}, nil)
	if res.err != nil || res.outputs["share-url"] != "" {
		t.Fatalf("production run: %v, share-url %q", res.err, res.outputs["share-url"])
	}
	if res := h.runStep("push", "push/with-new-branch", nil, map[string]string{"protection": "secret"}, nil); ferry.ErrorCode(res.err) != ferry.EINVALID {
		t.Fatalf("protection: secret: %v", res.err)
	}
}

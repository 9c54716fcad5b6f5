package site

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/storage"
)

func TestOccupant(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fst, err := storage.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := NewStore(fst)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("hi"), 0o644); err != nil {
		t.Fatal(err)
	}
	publish := func(project string, meta map[string]string) {
		t.Helper()
		if _, err := s.Publish(ctx, PublishParams{Project: project, Dir: dir, Meta: meta}); err != nil {
			t.Fatal(err)
		}
	}
	if o, err := s.Occupant(ctx, "empty"); o != nil || err != nil {
		t.Fatalf("empty name: %+v, %v", o, err)
	}
	publish("action", map[string]string{"repository": "Acme/Site"})
	publish("action", map[string]string{"repo": "https://github.com/acme/site.git"}) // ferry build's meta
	publish("mixed", map[string]string{"repository": "acme/site"})
	publish("mixed", map[string]string{"repository": "evil/site"})
	publish("folder", nil)
	if err := fst.Put(ctx, BlobKey("blobs-only", "00"), strings.NewReader(""), 0, storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		project, repo string
		owned         bool
	}{
		{"action", "acme/site", true}, {"action", "ACME/SITE", true}, {"action", "acme/other", false}, {"action", "", false},
		{"mixed", "acme/site", false}, {"folder", "acme/site", false}, {"blobs-only", "acme/site", false},
	} {
		o, err := s.Occupant(ctx, c.project)
		if err != nil || o == nil {
			t.Fatalf("%s: %+v, %v", c.project, o, err)
		}
		if got := o.OwnedBy(c.repo); got != c.owned {
			t.Errorf("%s owned by %q = %v, want %v (occupant %+v)", c.project, c.repo, got, c.owned, o)
		}
		if ferry.ErrorCode(o.TakenError()) != ferry.ECONFLICT {
			t.Errorf("%s: TakenError is not ECONFLICT", c.project)
		}
	}
	for in, want := range map[string]string{"https://github.com/Acme/Site.git": "acme/site", "https://github.com/acme/site": "acme/site",
		"http://github.com/acme/site": "", "https://gitlab.com/acme/site": "", "https://github.com/acme": "", "https://github.com/a/b/c": "", "/tmp/x": ""} {
		if got := GitHubRepository(in); got != want {
			t.Errorf("GitHubRepository(%q) = %q, want %q", in, got, want)
		}
	}
}

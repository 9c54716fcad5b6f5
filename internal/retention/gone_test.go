package retention_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/protect"
	"github.com/ferryhq/ferry/internal/retention"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/storage"
)

// deletedMidRun is storage on which the project is deleted (every object under its prefix, as the App's
// project deletion does) just before the collector writes its state: the deletion's last listing came before
// the collector's writes.
type deletedMidRun struct {
	storage.Storage
	project string
	done    bool
}

func (s *deletedMidRun) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts storage.PutOptions) error {
	if !s.done && strings.HasSuffix(key, "/gc/state.json") {
		s.done = true
		objs, err := s.Storage.List(ctx, site.ProjectPrefix(s.project))
		if err != nil {
			return err
		}
		for _, o := range objs {
			if err := s.Storage.Delete(ctx, o.Key); err != nil {
				return err
			}
		}
	}
	return s.Storage.Put(ctx, key, body, size, opts)
}

// TestProjectDeletedDuringCollection: a project deleted while it is collected keeps no gc/state.json or
// report written after the deletion's listing, on either backend; the Gone hook (the App's database answer)
// is obeyed too.
func TestProjectDeletedDuringCollection(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			raw := open(t)
			ss := site.NewStore(raw)
			publish(t, ss, "web", "one", false, "production")
			publish(t, ss, "web", "two", false, "pr-1")
			st := &deletedMidRun{Storage: raw, project: "web"}
			c := &retention.Collector{Storage: st, Log: quiet()}
			if _, err := c.Project(ctx, "web", retention.Defaults, nil, true); err != nil {
				t.Fatal(err)
			}
			if !st.done {
				t.Fatal("the collector never wrote its state")
			}
			if left := keys(t, raw, site.ProjectPrefix("web")); len(left) != 0 {
				t.Fatalf("a deleted project keeps %v", left)
			}

			// The App's answer: the project row is marked deleting, though its objects are not gone yet.
			publish(t, ss, "api", "three", false, "production")
			c = &retention.Collector{Storage: raw, Log: quiet(), Gone: func(_ context.Context, p string) (bool, error) { return p == "api", nil }}
			if _, err := c.Project(ctx, "api", retention.Defaults, nil, true); err != nil {
				t.Fatal(err)
			}
			for _, k := range keys(t, raw, site.ProjectPrefix("api")) {
				if strings.Contains(k, "/gc/") {
					t.Fatalf("a project being deleted keeps %s", k)
				}
			}
			// A live project keeps them.
			c = &retention.Collector{Storage: raw, Log: quiet()}
			if _, err := c.Project(ctx, "api", retention.Defaults, nil, true); err != nil {
				t.Fatal(err)
			}
			if _, err := raw.Stat(ctx, retention.ReportKey("api")); err != nil {
				t.Fatalf("a live project's report: %v", err)
			}
		})
	}
}

// TestHandoffRecordsCollected: records of used sign-in tokens go once older than protect.HandoffRecordTTL,
// and younger ones stay (they are what refuses a replay).
func TestHandoffRecordsCollected(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	st, err := storage.NewFile(root)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, site.NewStore(st), "web", "one", false, "production")
	var nonces []string
	for range 2 {
		tok := protect.HandoffToken(bytes.Repeat([]byte("k"), 32), "pr-1--web.localhost", "octocat", time.Now())
		ho, ok := protect.CheckHandoff(bytes.Repeat([]byte("k"), 32), "pr-1--web.localhost", tok, time.Now())
		if !ok {
			t.Fatal("token refused")
		}
		if err := protect.ClaimHandoff(ctx, st, "web", ho); err != nil {
			t.Fatal(err)
		}
		if err := protect.ClaimHandoff(ctx, st, "web", ho); err != protect.ErrHandoffUsed {
			t.Fatalf("second claim: %v, want ErrHandoffUsed", err)
		}
		nonces = append(nonces, ho.Nonce)
	}
	old := time.Now().Add(-protect.HandoffRecordTTL - time.Minute)
	if err := os.Chtimes(filepath.Join(root, filepath.FromSlash(protect.HandoffsPrefix("web")+nonces[0])), old, old); err != nil {
		t.Fatal(err)
	}
	rep, err := (&retention.Collector{Storage: st, Log: quiet()}).Project(ctx, "web", retention.Defaults, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	left := keys(t, st, protect.HandoffsPrefix("web"))
	if len(left) != 1 || !strings.HasSuffix(left[0], nonces[1]) {
		t.Fatalf("hand-off records left: %v", left)
	}
	if len(rep.Deleted) != 1 || rep.Deleted[0].Kind != retention.KindHandoff {
		t.Fatalf("report: %+v", rep.Deleted)
	}
}

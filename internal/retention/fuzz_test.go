package retention_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/retention"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/storage"
)

// FuzzCollectorState feeds the collector a damaged or hostile gc/state.json and gc/report.json (anyone with the
// project's storage credentials can write them): a (dry) run never fails or panics on them and never plans to
// delete the production deployment.
func FuzzCollectorState(f *testing.F) {
	for _, seed := range []string{``, `{}`, `null`, `{"unreferencedSince":null}`, `{"unreferencedSince":{"dpl-0000000000000000":"1970-01-01T00:00:00Z"}}`,
		`{"unreferencedSince":{"x":"not a time"}}`, `[1,2,3]`, "\x00\xff", `{"unreferencedSince":{"dpl-06h3ej88fa8t0cta":"2999-01-01T00:00:00Z"}}`} {
		f.Add([]byte(seed))
	}
	st := must(storage.NewFile(f.TempDir()))
	ss := site.NewStore(st)
	prod := publish(f, ss, "web", "prod", false, "production")
	publish(f, ss, "web", "pr", false) // a preview without an alias: what the state's grace periods decide
	c := &retention.Collector{Storage: st, Log: quiet(), Now: func() time.Time { return time.Now().Add(100 * 24 * time.Hour) }, DryRun: true}
	f.Fuzz(func(t *testing.T, state []byte) {
		ctx := context.Background()
		for _, key := range []string{"projects/web/gc/state.json", retention.ReportKey("web")} {
			if err := st.Put(ctx, key, bytes.NewReader(state), int64(len(state)), storage.PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		rep, err := c.Project(ctx, "web", retention.Defaults, nil, true)
		if err != nil {
			t.Fatalf("state %q: %v", state, err)
		}
		for _, d := range rep.DeletedDeployments {
			if d == prod {
				t.Fatalf("state %q: the production deployment would be deleted", state)
			}
		}
		_, _ = retention.ReportGet(ctx, st, "web") // an error is fine; a panic is not
	})
}

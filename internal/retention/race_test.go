package retention_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/retention"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/storage"
)

// variant is one of a few sites that publishes come back to, so that a publish often finds the blobs it needs
// already stored (and skips them) just while the collector finds them unreferenced: the race of the design.
func variant(i int) map[string]string {
	f := map[string]string{"index.html": fmt.Sprintf("<h1>v%d</h1>", i), "style.css": "body{}"}
	for j := range 20 {
		f[fmt.Sprintf("assets/%02d.js", j)] = fmt.Sprintf("v%d part %d", i%4, j) // shared by variants i, i+4, ...
	}
	return f
}

// TestConcurrentPublishAndGC runs publishes, alias moves and collections at once, with random timing, under a
// policy that deletes everything it may (the clock 40 days on, a rollback window of 1): after every publish
// and every alias move, the deployment is complete (every blob its manifest names exists), and at the end
// every alias leads to a complete deployment.
func TestConcurrentPublishAndGC(t *testing.T) {
	t.Parallel()
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rounds := 120
			if name != "file" {
				rounds = 30
			}
			if testing.Short() {
				rounds /= 3
			}
			testConcurrentPublishAndGC(t, open(t), rounds)
		})
	}
}

func testConcurrentPublishAndGC(t *testing.T, st storage.Storage, rounds int) {
	ctx := context.Background()
	ss := site.NewStore(st)
	const p = "web"
	dirs := make([]string, 8)
	for i := range dirs {
		dirs[i] = writeTree(t, variant(i))
	}
	pol := retention.Policy{RollbackWindow: 1, PreviewGraceDays: 1, StaleAfterDays: -1}.Over(retention.Defaults)
	var clock atomic.Int64 // the collector's clock moves a day per run, so previews age past their grace too
	clock.Store(time.Now().Add(40 * 24 * time.Hour).UnixNano())
	c := &retention.Collector{Storage: st, Log: quiet(), Now: func() time.Time { return time.Unix(0, clock.Load()) }}

	var mu sync.Mutex
	var published []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var collections, deleted atomic.Int64
	wg.Go(func() { // the collector
		for {
			select {
			case <-stop:
				return
			default:
			}
			rep, err := c.Project(ctx, p, pol, nil, true)
			if err != nil {
				t.Errorf("collect: %v", err)
				return
			}
			collections.Add(1)
			deleted.Add(int64(len(rep.Deleted)))
			clock.Add(int64(24 * time.Hour))
			time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		}
	})
	wg.Go(func() { // a user rolling pr-1 to earlier deployments, some already collected
		for {
			select {
			case <-stop:
				return
			default:
			}
			mu.Lock()
			var id string
			if len(published) > 0 {
				id = published[rand.IntN(len(published))]
			}
			mu.Unlock()
			if id == "" {
				time.Sleep(time.Millisecond)
				continue
			}
			err := ss.AliasSet(ctx, p, "pr-1", id)
			switch ferry.ErrorCode(err) {
			case "":
				if err := completeErr(st, p, id); err != nil { // pr-1 now holds it: nothing may be missing
					t.Errorf("after moving pr-1: %v", err)
					return
				}
			case ferry.ENOTFOUND: // collected before the move: refused, as it must be
			default:
				t.Errorf("alias move: %v", err)
				return
			}
			time.Sleep(time.Duration(rand.IntN(5000)) * time.Microsecond)
		}
	})
	for i := range rounds {
		time.Sleep(time.Duration(rand.IntN(4000)) * time.Microsecond)
		alias := "production"
		if i%3 == 0 {
			alias = "pr-2"
		}
		res, err := ss.Publish(ctx, site.PublishParams{Project: p, Dir: dirs[rand.IntN(len(dirs))], Aliases: []string{alias}})
		if err != nil {
			t.Errorf("publish %d: %v", i, err)
			break
		}
		if err := completeErr(st, p, res.Deployment); err != nil { // its alias holds it until the next publish to it
			t.Errorf("after publish %d: %v", i, err)
		}
		mu.Lock()
		published = append(published, res.Deployment)
		mu.Unlock()
		if t.Failed() {
			break
		}
	}
	close(stop)
	wg.Wait()
	if t.Failed() {
		return
	}
	final, err := c.Project(ctx, p, pol, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range must(ss.AliasList(ctx, p)) {
		complete(t, st, p, a.Deployment)
	}
	for _, d := range must(ss.DeploymentList(ctx, p)) {
		complete(t, st, p, d.ID)
	}
	t.Logf("%d publishes, %d collections deleting %d objects, then %d in a quiet run", rounds, collections.Load(), deleted.Load(), len(final.Deleted))
	switch {
	case deleted.Load()+int64(len(final.Deleted)) == 0:
		t.Error("the collector deleted nothing: the test did not exercise it")
	case deleted.Load() == 0 && rounds >= 100:
		// A short run (-short) may see writers' markers at every concurrent collection on a loaded machine.
		t.Error("no concurrent collection deleted anything: the test did not exercise the race")
	}
}

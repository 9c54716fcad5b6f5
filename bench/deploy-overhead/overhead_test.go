// Package deployoverhead measures what `ferry app` adds to a build: the time from a deployment's jobs being
// enqueued (what webhook intake does on arrival) to its alias answering on `ferry proxy`, minus the time of the
// raw install and build commands alone on the same fixture. Goal: at most 3 s (issue 4, "Deploy overhead").
//
//	go test ./bench/deploy-overhead -run '^$' -bench . -benchtime 5x
//
// It runs the real parts: PostgreSQL (pgtest), River with app/jobs' workers, the local builder running the real
// `ferry build` in bubblewrap against a git smart-HTTP server, file storage, the fake GitHub, and the proxy.
package deployoverhead

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/ferryhq/ferry/app/builder"
	"github.com/ferryhq/ferry/app/jobs"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/build/buildtest"
	"github.com/ferryhq/ferry/internal/build/gitserver"
	"github.com/ferryhq/ferry/internal/ghreport"
	"github.com/ferryhq/ferry/internal/ghreport/ghfake"
	"github.com/ferryhq/ferry/internal/pgtest"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/storage"
	"github.com/ferryhq/ferry/proxy"
)

// The test binary doubles as the ferry binary of the local builder (buildtest.Command).
func TestMain(m *testing.M) { buildtest.Main(m, pgtest.Main) }

// fixture is a small npm site with no dependencies: npm ci and a node build script.
var fixture = map[string]string{
	"package.json":      `{"name":"overhead","version":"1.0.0","private":true,"scripts":{"build":"node build.js"}}`,
	"package-lock.json": `{"name":"overhead","version":"1.0.0","lockfileVersion":3,"requires":true,"packages":{"":{"name":"overhead","version":"1.0.0"}}}`,
	"build.js":          `require("fs").mkdirSync("dist",{recursive:true});require("fs").writeFileSync("dist/index.html","<h1>overhead</h1>");`,
}

func BenchmarkDeployOverhead(b *testing.B) {
	if _, err := exec.LookPath("bwrap"); err != nil {
		b.Skip("bwrap is not installed: apt-get install bubblewrap")
	}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.NewURL(b))
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	st := store.New(pool)
	gh := ghfake.New(b)
	gh.AddInstallation(1, "acme/site")
	app, err := ghreport.NewApp(ghreport.Config{APIURL: gh.URL}, gh.AppID, gh.PrivateKeyPEM)
	if err != nil {
		b.Fatal(err)
	}
	git, err := gitserver.New(b.TempDir(), "")
	if err != nil {
		b.Fatal(err)
	}
	repo, err := git.CreateRepo("acme/site", []map[string]string{fixture})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(git)
	defer hs.Close()
	stURL := "file://" + b.TempDir()
	stg, err := storage.Open(ctx, stURL)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.InstallationUpsert(ctx, store.InstallationUpsertParams{ID: 1, AccountLogin: "acme", AccountType: "Organization", AccountID: 1}); err != nil {
		b.Fatal(err)
	}
	p, err := st.ProjectCreate(ctx, store.ProjectCreateParams{Name: "site", Repository: "acme/site", CloneURL: hs.URL + repo.Path,
		GitHubRepoID: 1, InstallationID: 1})
	if err != nil {
		b.Fatal(err)
	}
	bld, err := builder.NewLocal(builder.LocalConfig{Command: buildtest.Command()})
	if err != nil {
		b.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg, err := jobs.ClientConfig(jobs.Deps{Store: st, Site: site.NewStore(stg), Builder: bld, GitHub: app, StorageURL: stURL,
		Domain: "localhost", PublicURL: "http://localhost:8080", Logger: quiet}, 2)
	if err != nil {
		b.Fatal(err)
	}
	client, err := river.NewClient(riverpgxv5.New(pool), cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer client.StopAndCancel(ctx)

	px, err := proxy.New(proxy.Config{Storage: stg, Domain: "localhost", Log: quiet})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	pctx, stopProxy := context.WithCancel(ctx)
	defer stopProxy()
	go proxy.Serve(pctx, ln, px, time.Second)
	proxyURL := "http://" + ln.Addr().String() + "/"

	var deploy, raw time.Duration
	for i := 0; b.Loop(); i++ {
		branch := fmt.Sprintf("b%d", i)
		alias := site.BranchAlias(p.Name, branch)
		// A fresh project cache state is not wanted here: the overhead is Ferry's, so the dependency cache (none
		// for this fixture) plays no part.
		t0 := time.Now()
		err := st.InTx(ctx, func(st *store.Store, tx pgx.Tx) error {
			d, err := st.DeploymentCreate(ctx, store.DeploymentCreateParams{ID: site.NewDeploymentID(), ProjectID: p.ID,
				CommitSHA: repo.Commits[0], Ref: branch, Kind: store.KindPreview, Alias: alias})
			if err != nil {
				return err
			}
			return jobs.InsertDeploy(ctx, client, tx, d.ID)
		})
		if err != nil {
			b.Fatal(err)
		}
		waitServed(b, proxyURL, alias+"--site.localhost")
		deploy += time.Since(t0)

		raw += rawBuild(b, repo.Bare)
	}
	n := time.Duration(b.N)
	b.ReportMetric((deploy / n).Seconds(), "deploy-s/op")
	b.ReportMetric((raw / n).Seconds(), "raw-s/op")
	b.ReportMetric(((deploy - raw) / n).Seconds(), "overhead-s/op")
}

// waitServed polls the proxy until host answers 200 with the fixture's page.
func waitServed(b *testing.B, url, host string) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Host = host
		if resp, err := http.DefaultClient.Do(req); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.Contains(string(body), "overhead") {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Fatalf("%s never answered", host)
}

// rawBuild times the fixture's install and build commands alone, in a fresh checkout.
func rawBuild(b *testing.B, bare string) time.Duration {
	dir := filepath.Join(b.TempDir(), "src")
	if out, err := exec.Command("git", "clone", "-q", bare, dir).CombinedOutput(); err != nil {
		b.Fatalf("clone: %v: %s", err, out)
	}
	t0 := time.Now()
	for _, args := range [][]string{{"npm", "ci", "--no-audit", "--no-fund"}, {"npm", "run", "build"}} {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return time.Since(t0)
}

package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/site"
)

// TestUpstreamRequestCases runs the request-level upstream cases (Cloudflare's rules engine and asset-server
// handler tests, transcribed in internal/siteconfig/testdata/upstream/cloudflare-requests.json with their
// licence) through a published deployment and the real proxy. As for the parse cases, a case agrees with
// upstream or has a "ferry" block saying why it differs; FERRY_UPSTREAM_TALLY=1 only counts agreement.
func TestUpstreamRequestCases(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "internal", "siteconfig", "testdata", "upstream", "cloudflare-requests.json"))
	if err != nil {
		t.Fatal(err)
	}
	type request struct {
		Path     string            `json:"path"`
		Status   int               `json:"status"`
		Location *string           `json:"location"`
		Body     *string           `json:"body"`
		Header   map[string]string `json:"header"`
	}
	var f struct {
		Licence string `json:"licence"`
		Cases   []struct {
			Name      string    `json:"name"`
			Redirects string    `json:"redirects"`
			Headers   string    `json:"headers"`
			Files     []string  `json:"files"`
			Requests  []request `json:"requests"`
			Ferry     *struct {
				Requests []request `json:"requests"`
				Why      string    `json:"why"`
			} `json:"ferry"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	if f.Licence == "" {
		t.Fatal("no licence")
	}
	e := newEnv(t, Config{})
	check := func(host string, reqs []request) string {
		for _, rq := range reqs {
			r := e.do(t, "GET", host, rq.Path, "Accept-Encoding", "identity")
			switch {
			case r.status != rq.Status:
				return fmt.Sprintf("GET %s: status %d, want %d", rq.Path, r.status, rq.Status)
			case rq.Location != nil && r.header.Get("Location") != *rq.Location:
				return fmt.Sprintf("GET %s: Location %q, want %q", rq.Path, r.header.Get("Location"), *rq.Location)
			case rq.Body != nil && r.body != *rq.Body:
				return fmt.Sprintf("GET %s: body %.80q, want the file %s", rq.Path, r.body, *rq.Body)
			}
			for k, v := range rq.Header {
				got, ok := r.header[http.CanonicalHeaderKey(k)]
				if v == "-" && ok || v != "-" && strings.Join(got, ", ") != v {
					return fmt.Sprintf("GET %s: %s %q, want %q", rq.Path, k, got, v)
				}
			}
		}
		return ""
	}
	tallyOnly := os.Getenv("FERRY_UPSTREAM_TALLY") == "1"
	agree, differ := 0, 0
	for i, c := range f.Cases {
		files := map[string]string{"_redirects": c.Redirects, "_headers": c.Headers}
		for _, p := range c.Files {
			files[strings.TrimPrefix(p, "/")] = p
		}
		project := fmt.Sprintf("case%d", i)
		host := project + "." + testDomain
		vsUpstream := ""
		if err := publishDir(e, t.TempDir(), project, files); err != nil {
			vsUpstream = "publish: " + err.Error()
		} else {
			vsUpstream = check(host, c.Requests)
		}
		if vsUpstream == "" {
			agree++
		}
		switch {
		case tallyOnly:
			if vsUpstream != "" {
				t.Logf("differs from upstream: %s: %s", c.Name, vsUpstream)
			}
		case c.Ferry != nil:
			if c.Ferry.Why == "" || vsUpstream == "" {
				t.Errorf("%s: a ferry block needs a reason and a difference (upstream check: %q)", c.Name, vsUpstream)
			}
			if msg := check(host, c.Ferry.Requests); msg != "" || strings.HasPrefix(vsUpstream, "publish: ") {
				t.Errorf("%s: Ferry's documented behaviour: %s", c.Name, msg)
			} else {
				differ++
			}
		case vsUpstream != "":
			t.Errorf("%s: %s", c.Name, vsUpstream)
		}
	}
	t.Logf("upstream request cases: %d; %d agree with upstream, %d differ as documented", len(f.Cases), agree, differ)
}

// publishDir publishes files as e.publish does, but returns the error: a file that Ferry refuses is a
// disagreement to count, not a broken test.
func publishDir(e *testEnv, dir, project string, files map[string]string) error {
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return err
		}
	}
	_, err := e.store.Publish(context.Background(), site.PublishParams{Project: project, Dir: dir, Aliases: []string{"production"}})
	return err
}

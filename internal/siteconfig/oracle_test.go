package siteconfig

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNetlifyRedirectorOracle compares Ferry's rule engine with Netlify's own, the npm package
// netlify-redirector (MIT, the engine netlify-cli serves _redirects with), on every rule file of the upstream
// cases that Ferry accepts and on paths made from each rule's FROM. The oracle decides which rule matches and
// its target; shadowing by files and query passing happen outside it, so they are not compared here. The
// package is installed once into the temporary folder and reused; without node and npm (or the registry), the
// test is skipped.
func TestNetlifyRedirectorOracle(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: installs netlify-redirector from npm on first run")
	}
	dir := oracleDir(t)
	type probe struct {
		Path  string `json:"path"`
		Query string `json:"query"`
	}
	type input struct {
		Rules  string  `json:"rules"`
		Probes []probe `json:"probes"`
	}
	var inputs []input
	var sources []string
	extra := map[string]string{
		"ferry: splats, placeholders and statuses": "/old /new\n/home / 302\n/blog/* /posts/:splat\n/news/:year/:slug /articles/:year-:slug 301\n" +
			"/docs/:v/* https://docs.example.com/:v/:splat?from=ferry 302\n/shop/* /shop/index.html 200\n/u/:name /people/:name 308\n" +
			"/x/:a/:b https://example.com:8443/:b/:a 301\n/letters* /abc:splat 301\n/missing/* /404.html 404\n/forced /forced-target 302!\n",
		"ferry: query conditions": "/store id=:id /blog/:id 301\n/store kind=shoes /shoes 302\n/s a=:a b=:b /t/:b/:a 200\n/store /all 301\n/admin/* 200!\n",
	}
	for name, rules := range extra {
		rds, err := ParseRedirects(strings.NewReader(rules))
		if err != nil {
			t.Fatal(err)
		}
		var probes []probe
		for _, rd := range rds {
			for _, p := range probePaths(rd.From) {
				for _, q := range probeQueries(rd.Query) {
					probes = append(probes, probe{p, q})
				}
			}
		}
		inputs = append(inputs, input{rules, probes})
		sources = append(sources, "extra: "+name)
	}
	for _, name := range []string{"netlify-redirects.json", "cloudflare-redirects.json", "cloudflare-requests.json"} {
		for _, c := range loadUpstream(t, name).Cases {
			rds, err := ParseRedirects(strings.NewReader(c.Redirects))
			if err != nil || len(rds) == 0 {
				continue
			}
			var probes []probe
			seen := map[string]bool{}
			for _, rd := range rds {
				for _, p := range probePaths(rd.From) {
					for _, q := range probeQueries(rd.Query) {
						if k := p + "?" + q; !seen[k] {
							seen[k] = true
							probes = append(probes, probe{p, q})
						}
					}
				}
			}
			inputs = append(inputs, input{c.Redirects, probes})
			sources = append(sources, name+": "+c.Name)
		}
	}
	script := `
const r = require(process.argv[1] + "/node_modules/netlify-redirector");
const inputs = JSON.parse(require("fs").readFileSync(0, "utf8"));
(async () => {
  const out = [];
  for (const i of inputs) {
    const m = await r.parsePlain(i.rules, {});
    out.push(i.probes.map(p => m.match({scheme: "https", host: "example.com", path: p.path, query: p.query,
      getHeader: () => "", getCookie: () => ""})));
  }
  process.stdout.write(JSON.stringify(out));
})();`
	data, _ := json.Marshal(inputs)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "-e", script, dir)
	cmd.Stdin = bytes.NewReader(data)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	outData, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	type match struct {
		To     string `json:"to"`
		Status int    `json:"status"`
		Force  bool   `json:"force"`
	}
	var results [][]*match
	if err := json.Unmarshal(outData, &results); err != nil {
		t.Fatal(err)
	}
	total, agree := 0, 0
	for i, in := range inputs {
		rds, _ := ParseRedirects(strings.NewReader(in.Rules))
		rules, err := Compile(Serving{Redirects: rds})
		if err != nil {
			t.Fatal(err)
		}
		for j, p := range in.Probes {
			total++
			path, _ := url.PathUnescape(p.Path)
			got, ok := redirectQuery(rules, path, p.Query)
			want := results[i][j]
			switch {
			case !ok && want == nil:
				agree++
			case ok && want != nil && got.Status == want.Status && sameURL(got.To, want.To):
				agree++
			default:
				msg := "no match"
				if ok {
					msg = fmt.Sprintf("%d %s", got.Status, got.To)
				}
				wmsg := "no match"
				if want != nil {
					wmsg = fmt.Sprintf("%d %s", want.Status, want.To)
				}
				why, known := oracleDifferences[strings.SplitN(sources[i], ": ", 2)[1]]
				if !known {
					t.Errorf("%s: %s?%s: Ferry %s, netlify-redirector %s", sources[i], p.Path, p.Query, msg, wmsg)
				} else {
					t.Logf("differs as documented (%s): %s: %s?%s: Ferry %s, netlify-redirector %s", why, sources[i], p.Path, p.Query, msg, wmsg)
				}
			}
		}
	}
	t.Logf("netlify-redirector oracle: %d of %d probes agree (%d rule files)", agree, total, len(inputs))
}

// oracleDifferences are the upstream cases where Ferry deliberately differs from netlify-redirector, and why.
var oracleDifferences = map[string]string{
	"parseRedirects.valid.test.ts: should preserve querystrings on to": "a query in FROM (/c?this=rejected) is a " +
		"query condition in Ferry; netlify-redirector takes it as part of the path, which no request path can match",
}

// sameURL compares targets as browsers resolve them: "https://host" and "https://host/" are one URL (RFC 3986
// 6.2.3), which Ferry writes with its slash as Cloudflare does.
func sameURL(a, b string) bool {
	norm := func(s string) string {
		if u, err := url.Parse(s); err == nil && u.Host != "" && u.Path == "" && u.RawQuery == "" && u.Fragment == "" {
			return s + "/"
		}
		return s
	}
	return norm(a) == norm(b)
}

// probePaths makes request paths (escaped, as the oracle takes them) that a FROM pattern should or should not
// match: placeholders and splats filled in, with and without a trailing slash, and the pattern's parent.
func probePaths(from string) []string {
	var out []string
	for _, splat := range []string{"", "x", "x/y/"} {
		segs := strings.Split(from, "/")
		for k, s := range segs {
			switch {
			case s == "*":
				segs[k] = splat
			case strings.HasPrefix(s, ":"):
				segs[k] = "v" + s[1:]
			default:
				segs[k] = strings.ReplaceAll(s, "*", splat)
			}
		}
		p := strings.Join(segs, "/")
		out = append(out, p, strings.TrimSuffix(p, "/")+"/")
		if p != "/" {
			out = append(out, strings.TrimSuffix(p, "/"))
		}
	}
	if i := strings.LastIndexByte(strings.TrimSuffix(from, "/"), '/'); i > 0 {
		out = append(out, from[:i])
	}
	var kept []string
	for _, p := range out {
		if p != "" && p[0] == '/' {
			kept = append(kept, p)
		}
	}
	return kept
}

// probeQueries makes queries for a rule's conditions: none, all of them, and all plus another parameter.
func probeQueries(qs []QueryParam) []string {
	if len(qs) == 0 {
		return []string{"", "x=1"}
	}
	var kv []string
	for _, q := range qs {
		v := q.Value
		if strings.HasPrefix(v, ":") {
			v = "q" + v[1:]
		}
		kv = append(kv, url.QueryEscape(q.Key)+"="+url.QueryEscape(v))
	}
	all := strings.Join(kv, "&")
	return []string{"", all, all + "&other=1", "other=1"}
}

// oracleDir returns a folder with netlify-redirector installed, installing it on first use.
func oracleDir(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	dir := filepath.Join(os.TempDir(), "ferry-test-netlify-redirector-0.5.0")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "netlify-redirector", "index.js")); err == nil {
		return dir
	}
	tmp, err := os.MkdirTemp(os.TempDir(), "ferry-test-netlify-redirector-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund", "--prefix", tmp, "netlify-redirector@0.5.0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("cannot install netlify-redirector (no registry?): %v\n%s", err, out)
	}
	if err := os.Rename(tmp, dir); err != nil && !os.IsExist(err) {
		if _, serr := os.Stat(filepath.Join(dir, "node_modules")); serr != nil {
			t.Fatal(err)
		}
	}
	return dir
}

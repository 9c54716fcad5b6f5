package siteconfig

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// The upstream cases are test cases of the parsers that users' files were written for: netlify/build's
// redirect-parser and headers-parser, and Cloudflare's parseRedirects and parseHeaders, transcribed into
// testdata/upstream/*.json with their licences (testdata/upstream/NOTICE). A case either agrees with upstream,
// or carries a "ferry" block saying where and why Ferry deliberately differs; anything else fails.
// FERRY_UPSTREAM_TALLY=1 only counts how many cases agree with upstream, ignoring the ferry blocks, and never
// fails: that is how the figures before and after a change are taken.

// upstreamFile is one testdata/upstream/*.json file (the proxy's request-level harness reads the same format).
type upstreamFile struct {
	Source  string         `json:"source"`
	Commit  string         `json:"commit"`
	Licence string         `json:"licence"`
	Cases   []upstreamCase `json:"cases"`
}

type upstreamCase struct {
	Name      string    `json:"name"`
	Redirects string    `json:"redirects"`
	Headers   string    `json:"headers"`
	Generate  *generate `json:"generate"`
	expectation
	Ferry *struct {
		expectation
		Why string `json:"why"`
	} `json:"ferry"`
}

type expectation struct {
	Rules       *[]wantRedirect `json:"rules"`
	HeaderRules *[]wantHeader   `json:"headerRules"`
	ErrorLine   int             `json:"errorLine"`
	RuleCount   *int            `json:"ruleCount"`
	Matches     [][2]any        `json:"matches"`
}

func (e expectation) set() bool {
	return e.Rules != nil || e.HeaderRules != nil || e.ErrorLine != 0 || e.RuleCount != nil || e.Matches != nil
}

type generate struct {
	Static       int `json:"static"`
	Dynamic      int `json:"dynamic"`
	HeaderBlocks int `json:"headerBlocks"`
}

type wantRedirect struct {
	From   string            `json:"from"`
	To     string            `json:"to"`
	Status int               `json:"status"`
	Force  bool              `json:"force"`
	Query  map[string]string `json:"query"`
}

type wantHeader struct {
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers"`
	Unset   []string          `json:"unset"`
}

func loadUpstream(t *testing.T, name string) upstreamFile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "upstream", name))
	if err != nil {
		t.Fatal(err)
	}
	var f upstreamFile
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return f
}

func (g *generate) text() string {
	var b strings.Builder
	b.WriteString("\n    # COMMENTS DON'T COUNT TOWARDS TOTAL VALID RULES\n")
	for i := range g.Static {
		fmt.Fprintf(&b, "/a/%d /b/%d\n", i, i)
	}
	for i := range g.Dynamic {
		fmt.Fprintf(&b, "/a/%d/* /b/%d/:splat\n", i, i)
	}
	for i := range g.HeaderBlocks {
		fmt.Fprintf(&b, "/a/%d\nx-index: %d\n", i, i)
	}
	b.WriteString("    # BUT DO GET COUNTED AS TOTAL LINES SKIPPED\n")
	return b.String()
}

// checkParse runs one case's file through Ferry and compares the result with e; "" means they agree.
func checkParse(c upstreamCase, e expectation, redirects bool) string {
	file, src := "_headers", c.Headers
	if redirects {
		file, src = "_redirects", c.Redirects
	}
	if c.Generate != nil {
		src = c.Generate.text()
	}
	var rds []Redirect
	var hrs []HeaderRule
	var err error
	if redirects {
		rds, err = ParseRedirects(strings.NewReader(src))
	} else {
		hrs, err = ParseHeaders(strings.NewReader(src))
	}
	if e.ErrorLine > 0 {
		if err == nil || !strings.HasPrefix(err.Error(), fmt.Sprintf("%s:%d:", file, e.ErrorLine)) {
			return fmt.Sprintf("want an error at %s:%d, got %v", file, e.ErrorLine, err)
		}
		return ""
	}
	if err != nil {
		return fmt.Sprintf("unexpected error: %v", err)
	}
	rules, err := Compile(Serving{Redirects: rds, Headers: hrs})
	if err != nil {
		return fmt.Sprintf("compile: %v", err)
	}
	if e.RuleCount != nil && len(rds)+len(hrs) != *e.RuleCount {
		return fmt.Sprintf("%d rules, want %d", len(rds)+len(hrs), *e.RuleCount)
	}
	if e.Rules != nil {
		var got []wantRedirect
		for _, rd := range rds {
			w := wantRedirect{From: rd.From, To: rd.To, Status: rd.Status, Force: rd.Force, Query: queryOf(rd)}
			got = append(got, w)
		}
		want := slices.Clone(*e.Rules)
		for i := range want {
			if want[i].Status == 0 {
				want[i].Status = 301 // the line gives none: compare with Ferry's (Netlify's) default
			}
		}
		if len(got) != len(want) || len(got) > 0 && !reflect.DeepEqual(got, want) {
			return fmt.Sprintf("rules\n got  %+v\n want %+v", got, want)
		}
	}
	if e.HeaderRules != nil {
		var got []wantHeader
		for _, hr := range hrs {
			w := wantHeader{Path: hr.Path, Headers: map[string]string{}}
			for _, h := range hr.Values {
				name := strings.ToLower(h.Name)
				if v, ok := w.Headers[name]; ok {
					w.Headers[name] = v + ", " + h.Value
				} else {
					w.Headers[name] = h.Value
				}
			}
			for _, u := range unsetOf(hr) {
				w.Unset = append(w.Unset, strings.ToLower(u))
			}
			got = append(got, w)
		}
		want := slices.Clone(*e.HeaderRules)
		for i := range want {
			var u []string
			for _, n := range want[i].Unset {
				u = append(u, strings.ToLower(n))
			}
			want[i].Unset = u
		}
		if len(got) != len(want) || len(got) > 0 && !reflect.DeepEqual(got, want) {
			return fmt.Sprintf("header rules\n got  %+v\n want %+v", got, want)
		}
	}
	for _, m := range e.Matches {
		path, want := m[0].(string), m[1].(bool)
		got := false
		headersOf(rules, path, func(string, string) { got = true })
		if got != want {
			return fmt.Sprintf("%s matches %q: %v, want %v", strings.TrimSpace(src), path, got, want)
		}
	}
	return ""
}

func TestUpstreamParseCases(t *testing.T) {
	tallyOnly := os.Getenv("FERRY_UPSTREAM_TALLY") == "1"
	total, agree, differ := 0, 0, 0
	for _, name := range []string{"netlify-redirects.json", "netlify-headers.json", "cloudflare-redirects.json", "cloudflare-headers.json"} {
		f := loadUpstream(t, name)
		if f.Licence == "" || f.Source == "" || f.Commit == "" {
			t.Errorf("%s: source, commit and licence are required", name)
		}
		redirects := strings.HasSuffix(name, "-redirects.json")
		fileAgree := 0
		for _, c := range f.Cases {
			total++
			if !c.expectation.set() {
				t.Errorf("%s: %s: no expectation", name, c.Name)
				continue
			}
			vsUpstream := checkParse(c, c.expectation, redirects)
			if vsUpstream == "" {
				agree++
				fileAgree++
			}
			switch {
			case tallyOnly:
				if vsUpstream != "" {
					t.Logf("differs from upstream: %s: %s: %s", name, c.Name, vsUpstream)
				}
			case c.Ferry != nil && c.Ferry.expectation.set():
				if c.Ferry.Why == "" {
					t.Errorf("%s: %s: a ferry block must say why", name, c.Name)
				}
				if vsUpstream == "" {
					t.Errorf("%s: %s: agrees with upstream now; drop its ferry block", name, c.Name)
				}
				if msg := checkParse(c, c.Ferry.expectation, redirects); msg != "" {
					t.Errorf("%s: %s: Ferry's documented behaviour: %s", name, c.Name, msg)
				} else {
					differ++
				}
			case vsUpstream != "":
				t.Errorf("%s: %s: %s", name, c.Name, vsUpstream)
			}
		}
		t.Logf("%s: %d of %d cases agree with upstream", name, fileAgree, len(f.Cases))
	}
	t.Logf("upstream parse cases: %d; %d agree with upstream, %d differ as documented", total, agree, differ)
}

package site

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/ferry"
)

func TestValidateProjectName(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"web", "a", "my-site-2", "0x", strings.Repeat("a", MaxProjectName)} {
		if err := ValidateProjectName(name); err != nil {
			t.Errorf("ValidateProjectName(%q) = %v, want nil", name, err)
		}
	}
	for _, name := range []string{"", "Web", "-web", "web-", "we--b", "we_b", "we.b", "../x", "a/b", "é", strings.Repeat("a", MaxProjectName+1), "web\x00"} {
		err := ValidateProjectName(name)
		if ferry.ErrorCode(err) != ferry.EINVALID {
			t.Errorf("ValidateProjectName(%q) = %v, want EINVALID", name, err)
		}
	}
	err := ValidateProjectName(strings.Repeat("a", 41))
	if err == nil || !strings.Contains(err.Error(), "40") {
		t.Errorf("error for a long name does not state the limit: %v", err)
	}
}

func TestValidateAlias(t *testing.T) {
	t.Parallel()
	project := strings.Repeat("p", MaxProjectName)
	for _, alias := range []string{"production", "pr-42", "git-main", "dpl", "dplx-1", strings.Repeat("a", MaxLabel-2-len(project))} {
		if err := ValidateAlias(project, alias); err != nil {
			t.Errorf("ValidateAlias(%q) = %v, want nil", alias, err)
		}
	}
	for _, alias := range []string{"", "PR-1", "pr--1", "-pr", "pr-", "dpl-x", NewDeploymentID(), "a/b", "..", strings.Repeat("a", MaxLabel-1-len(project))} {
		if err := ValidateAlias(project, alias); ferry.ErrorCode(err) != ferry.EINVALID {
			t.Errorf("ValidateAlias(%q) = %v, want EINVALID", alias, err)
		}
	}
}

func TestDeploymentID(t *testing.T) {
	t.Parallel()
	before := time.Now().Add(-time.Millisecond)
	id := NewDeploymentID()
	if !IsDeploymentID(id) || len(id) != 20 || !strings.HasPrefix(id, "dpl-") {
		t.Fatalf("NewDeploymentID() = %q, not a deployment id", id)
	}
	if at, ok := DeploymentTime(id); !ok || at.Before(before.Truncate(time.Millisecond)) || at.After(time.Now()) {
		t.Errorf("DeploymentTime(%q) = %v, %v; want about now", id, at, ok)
	}
	// Ids are time-sortable: a later one sorts after an earlier one.
	time.Sleep(2 * time.Millisecond)
	if later := NewDeploymentID(); later <= id {
		t.Errorf("later id %q does not sort after %q", later, id)
	}
	seen := map[string]bool{}
	for range 1000 {
		id := NewDeploymentID()
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
	for _, bad := range []string{"", "dpl-", "dpl-0123456789abcdeF", "dpl-0123456789abcdew", "dpl-0123456789abcdef0", "xpl-0123456789abcdef", "production"} {
		if IsDeploymentID(bad) {
			t.Errorf("IsDeploymentID(%q) = true", bad)
		}
	}
	// Every deployment id fits in a host label with the longest project.
	if err := ValidateProjectName(strings.Repeat("p", MaxProjectName)); err != nil {
		t.Fatal(err)
	}
	if n := len(id) + 2 + MaxProjectName; n > MaxLabel {
		t.Errorf("deployment host label has %d characters", n)
	}
}

func TestBranchAlias(t *testing.T) {
	t.Parallel()
	long := "feature/" + strings.Repeat("very-long-name-", 6)
	tests := []struct{ project, branch, want string }{
		{"web", "main", "git-main"},
		{"web", "Feature/Login_Page", "git-feature-login-page"},
		{"web", "--weird//branch__", "git-weird-branch"},
		{"web", "dependabot/npm_and_yarn/lodash-4.17.21", "git-dependabot-npm-and-yarn-lodash-4-17-21"},
		{"web", "ü", "git-" + hash6("ü")},
	}
	for _, tt := range tests {
		if got := BranchAlias(tt.project, tt.branch); got != tt.want {
			t.Errorf("BranchAlias(%q, %q) = %q, want %q", tt.project, tt.branch, got, tt.want)
		}
	}
	for _, project := range []string{"web", strings.Repeat("p", MaxProjectName)} {
		a, b := BranchAlias(project, long+"a"), BranchAlias(project, long+"b")
		if a == b {
			t.Errorf("long branches sharing a prefix got the same alias %q", a)
		}
		for _, alias := range []string{a, b} {
			if err := ValidateAlias(project, alias); err != nil {
				t.Errorf("BranchAlias gave an invalid alias: %v", err)
			}
			if !strings.HasPrefix(alias, "git-feature-") {
				t.Errorf("BranchAlias cut %q unpredictably", alias)
			}
		}
		if a != BranchAlias(project, long+"a") {
			t.Error("BranchAlias is not deterministic")
		}
		if !strings.HasSuffix(a, "-"+hash6(long+"a")) {
			t.Errorf("BranchAlias(%q) = %q, want the branch hash suffix", long+"a", a)
		}
	}
}

func hash6(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:3])
}

func TestPRAlias(t *testing.T) {
	t.Parallel()
	if got := PRAlias(42); got != "pr-42" {
		t.Errorf("PRAlias(42) = %q", got)
	}
}

func TestParseHost(t *testing.T) {
	t.Parallel()
	id := NewDeploymentID()
	tests := []struct {
		host, domain  string
		project, name string
		ok            bool
	}{
		{"web.example.com", "example.com", "web", "production", true},
		{"web.example.com:443", "example.com", "web", "production", true},
		{"WEB.Example.COM.", "example.com", "web", "production", true},
		{"pr-42--web.example.com", "example.com", "web", "pr-42", true},
		{"git-main--web.localhost:8081", "localhost", "web", "git-main", true},
		{"git-main--web.localhost:8081", "localhost:8081", "web", "git-main", true},
		{"web.localhost", "http://localhost:8081", "web", "production", true},
		{id + "--web.example.com", "example.com", "web", id, true},
		{"production--web.example.com", "example.com", "web", "production", true},
		{"example.com", "example.com", "", "", false},
		{".example.com", "example.com", "", "", false},
		{"", "example.com", "", "", false},
		{"web.example.com", "", "", "", false},
		{"web.example.org", "example.com", "", "", false},
		{"webexample.com", "example.com", "", "", false},
		{"a.web.example.com", "example.com", "", "", false},
		{"pr-1--we--b.example.com", "example.com", "", "", false},
		{"--web.example.com", "example.com", "", "", false},
		{"pr-1--.example.com", "example.com", "", "", false},
		{"we_b.example.com", "example.com", "", "", false},
		{"dpl-nope--web.example.com", "example.com", "", "", false},
		{"-web.example.com", "example.com", "", "", false},
		{strings.Repeat("a", 41) + ".example.com", "example.com", "", "", false},
		{strings.Repeat("a", 30) + "--" + strings.Repeat("b", 32) + ".example.com", "example.com", "", "", false},
		{"[::1]:8080", "example.com", "", "", false},
		{"web.example.com:x", "example.com", "", "", false},
		{"web.example.com\x00", "example.com", "", "", false},
	}
	for _, tt := range tests {
		project, name, ok := ParseHost(tt.host, tt.domain)
		if project != tt.project || name != tt.name || ok != tt.ok {
			t.Errorf("ParseHost(%q, %q) = %q, %q, %v; want %q, %q, %v", tt.host, tt.domain, project, name, ok, tt.project, tt.name, tt.ok)
		}
	}
}

func TestParseHostAllocations(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		if _, _, ok := ParseHost("pr-42--web.example.com:8443", "example.com"); !ok {
			t.Fatal("no match")
		}
	})
	if allocs != 0 {
		t.Errorf("ParseHost allocates %v times per call, want 0", allocs)
	}
}

func BenchmarkParseHost(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		ParseHost("pr-42--web.example.com:8443", "example.com")
	}
}

func FuzzParseHost(f *testing.F) {
	for _, seed := range []string{"web.example.com", "pr-1--web.example.com:80", "WEB.EXAMPLE.COM.", "a.b.example.com", "--.example.com", "dpl-0123456789abcdef--web.example.com", "", ":", "[::1]:80", "\xff.example.com"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, host string) {
		project, name, ok := ParseHost(host, "example.com")
		if !ok {
			if project != "" || name != "" {
				t.Fatalf("ParseHost(%q) not ok but returned %q, %q", host, project, name)
			}
			return
		}
		if err := ValidateProjectName(project); err != nil {
			t.Fatalf("ParseHost(%q) gave invalid project: %v", host, err)
		}
		if name != ProductionAlias && !IsDeploymentID(name) {
			if err := ValidateAlias(project, name); err != nil {
				t.Fatalf("ParseHost(%q) gave invalid name: %v", host, err)
			}
		}
		// The URL that Ferry prints for the result leads back to it.
		u := DeploymentURL("example.com", project, name)
		p2, n2, ok2 := ParseHost(strings.TrimPrefix(u, "https://"), "example.com")
		if !ok2 || p2 != project || n2 != name {
			t.Fatalf("round trip of %q via %q gave %q, %q, %v", host, u, p2, n2, ok2)
		}
	})
}

func TestDeploymentURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ domain, project, name, want string }{
		{"example.com", "web", "production", "https://web.example.com"},
		{"example.com", "web", "", "https://web.example.com"},
		{"example.com", "web", "pr-1", "https://pr-1--web.example.com"},
		{"localhost:8081", "web", "pr-1", "http://pr-1--web.localhost:8081"},
		{"localhost", "web", "production", "http://web.localhost"},
		{"127.0.0.1.nip.io", "web", "production", "https://web.127.0.0.1.nip.io"},
		{"http://preview.internal/", "web", "git-x", "http://git-x--web.preview.internal"},
		{"https://localhost:8443", "web", "production", "https://web.localhost:8443"},
	}
	for _, tt := range tests {
		if got := DeploymentURL(tt.domain, tt.project, tt.name); got != tt.want {
			t.Errorf("DeploymentURL(%q, %q, %q) = %q, want %q", tt.domain, tt.project, tt.name, got, tt.want)
		}
	}
}

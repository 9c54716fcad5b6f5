package build

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/ferry"
)

// TestNodeRange: engines.node ranges as real packages write them (Vite's, Nuxt's, Gatsby's, Angular's).
func TestNodeRange(t *testing.T) {
	for _, tc := range []struct {
		rng      string
		yes, not []string
	}{
		{"^20.19.0 || >=22.12.0", []string{"20.19.0", "20.20.2", "22.12.0", "24.1.0"}, []string{"20.18.9", "21.7.0", "22.11.0", "18.0.0"}},
		{"^22.19.0 || ^24.11.0 || >=26.0.0", []string{"22.19.0", "24.11.0", "26.0.0"}, []string{"20.20.2", "23.0.0", "24.10.0", "25.9.0"}},
		{">=18.0.0 <26", []string{"18.0.0", "25.9.9"}, []string{"17.9.0", "26.0.0"}},
		{">=22.12.0", []string{"22.12.0", "30.0.0"}, []string{"22.11.9"}},
		{">= 22", []string{"22.0.0"}, []string{"21.9.9"}},
		{"22", []string{"22.0.0", "22.99.1"}, []string{"21.0.0", "23.0.0"}},
		{"22.x", []string{"22.3.0"}, []string{"23.0.0"}},
		{"v20", []string{"20.1.0"}, []string{"22.0.0"}},
		{"~22.1", []string{"22.1.0", "22.1.9"}, []string{"22.2.0"}},
		{"~22.1.3", []string{"22.1.3"}, []string{"22.1.2", "22.2.0"}},
		{"^0.2.3", []string{"0.2.9"}, []string{"0.3.0"}},
		{"18 - 20", []string{"18.0.0", "20.99.0"}, []string{"21.0.0", "17.9.9"}},
		{"18 - 20.1.2", []string{"20.1.2"}, []string{"20.1.3"}},
		{"*", []string{"1.0.0", "26.0.0"}, nil},
		{"", []string{"1.0.0"}, nil},
		{">20", []string{"21.0.0"}, []string{"20.9.9"}},
		{"<=20", []string{"20.9.9"}, []string{"21.0.0"}},
		{"<20.5", []string{"20.4.9"}, []string{"20.5.0"}},
		{"=22.1.0", []string{"22.1.0"}, []string{"22.1.1"}},
		{">=22.12.0-rc.1", []string{"22.12.0"}, []string{"22.11.0"}},
	} {
		r, err := parseNodeRange(tc.rng)
		if err != nil {
			t.Errorf("%q: %v", tc.rng, err)
			continue
		}
		for _, v := range tc.yes {
			if sv, _ := parseSemver(v); !r.satisfiedBy(sv) {
				t.Errorf("%q should allow %s", tc.rng, v)
			}
		}
		for _, v := range tc.not {
			if sv, _ := parseSemver(v); r.satisfiedBy(sv) {
				t.Errorf("%q should refuse %s", tc.rng, v)
			}
		}
	}
	for _, bad := range []string{"latest", "lts/*", "22.1.2.3", "1.0.0 - ", "$(rm -rf /)", "01"} {
		if _, err := parseNodeRange(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	r, _ := parseNodeRange(">=22.12.0")
	if v, ok := r.best([]string{"20.20.2", "24.1.0", "22.12.0", "22.23.5", "x"}); !ok || v.String() != "22.23.5" {
		t.Errorf("best = %v %v", v, ok)
	}
	if r.allowsMajorBelow(22) || !r.allowsMajorBelow(23) {
		t.Error("allowsMajorBelow")
	}
	r, _ = parseNodeRange("22")
	if v, ok := r.best([]string{"20.20.2", "22.12.0", "22.23.5", "24.1.0"}); !ok || v.String() != "22.23.5" {
		t.Errorf("best 22 = %v %v", v, ok)
	}
}

func FuzzNodeRange(f *testing.F) {
	for _, s := range []string{"^20.19.0 || >=22.12.0", ">=18 <26", "18 - 20", "~22.1", "*", "22.x", ">= 22", "<=0", "^0.0.1"} {
		f.Add(s, "22.12.0")
	}
	f.Fuzz(func(t *testing.T, rng, ver string) {
		r, err := parseNodeRange(rng)
		if err != nil {
			return
		}
		v, ok := parseSemver(ver)
		if !ok {
			return
		}
		a := r.satisfiedBy(v)
		// One more alternative can only allow more.
		r2, err := parseNodeRange(rng + " || " + ver)
		if err != nil {
			t.Fatalf("%q || %q: %v", rng, ver, err)
		}
		if !r2.satisfiedBy(v) || a && !r2.satisfiedBy(v) {
			t.Fatalf("%q || %s refuses %s", rng, ver, ver)
		}
	})
}

// TestResolveNode: a range the builder's node satisfies uses it; one it does not fails at once without a tool
// cache (naming both versions), and is met from the tool cache when there is one.
func TestResolveNode(t *testing.T) {
	ctx := context.Background()
	have := strings.TrimPrefix(nodeVersion(ctx), "v")
	if have == "" {
		t.Skip("node is not installed")
	}
	log := slog.New(slog.DiscardHandler)
	got, err := resolveNode(ctx, Plan{PackageManager: "npm", EnginesNode: ">=" + have}, "", fromFerryJSON, log)
	if err != nil || got.Version != have || got.BinDir != "" {
		t.Errorf("satisfied range: %+v %v", got, err)
	}
	_, err = resolveNode(ctx, Plan{PackageManager: "npm", EnginesNode: ">=99"}, "", fromFerryJSON, log)
	wantCode(t, err, ferry.EINVALID, `package.json engines.node ">=99"`, "this builder has node v"+have, "nodeVersion")
	fw := &Framework{Name: "Nuxt", pkg: "nuxt"}
	_, err = resolveNode(ctx, Plan{PackageManager: "npm", EnginesNode: ">=18", FrameworkNode: ">=99", Framework: fw}, "", fromFerryJSON, log)
	wantCode(t, err, ferry.EINVALID, `package.json engines.node ">=18" and nuxt's engines.node ">=99"`, "this builder has node v"+have)
	if _, err := resolveNode(ctx, Plan{PackageManager: "npm", NodeVersion: strings.Split(have, ".")[0], FrameworkNode: ">=99", Framework: fw}, "", fromFerryJSON, log); err != nil {
		t.Errorf("nodeVersion wins over the framework's engines: %v", err)
	}
	_, err = resolveNode(ctx, Plan{PackageManager: "npm", NodeVersion: "latest"}, "", fromFerryJSON, log)
	wantCode(t, err, ferry.EINVALID, "ferry.json nodeVersion", "not a version range")

	// A release already in the tool cache is used without asking the registry.
	cache := t.TempDir()
	bin := filepath.Join(cache, "node", "99.1.0", "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "node"), []byte("#!/bin/sh\necho v99.1.0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err = resolveNode(ctx, Plan{PackageManager: "npm", NodeVersion: "99"}, cache, fromFerryJSON, log)
	if err != nil || got.Version != "99.1.0" || got.BinDir != bin || got.Prefix != filepath.Dir(bin) {
		t.Errorf("from the tool cache: %+v %v", got, err)
	}
}

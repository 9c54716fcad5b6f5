package site

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
)

// TestSignalFollowsAliasWrites: every alias and domain write rewrites the signal with different bytes, and an
// alias write that fails leaves it alone.
func TestSignalFollowsAliasWrites(t *testing.T) {
	t.Parallel()
	s, _ := newFileStore(t)
	ctx := context.Background()
	if _, err := s.SignalGet(ctx); err == nil {
		t.Fatal("signal exists before any alias write")
	}
	dir := writeTree(t, map[string]string{"index.html": "hi"})
	res, err := s.Publish(ctx, PublishParams{Project: "web", Dir: dir, Aliases: []string{"production"}})
	if err != nil {
		t.Fatal(err)
	}
	var seen [][]byte
	check := func(what, project, name string) {
		t.Helper()
		b, err := s.SignalGet(ctx)
		if err != nil {
			t.Fatalf("after %s: %v", what, err)
		}
		for _, old := range seen {
			if bytes.Equal(old, b) {
				t.Fatalf("after %s the signal did not change: %s", what, b)
			}
		}
		seen = append(seen, b)
		var sig Signal
		if err := json.Unmarshal(b, &sig); err != nil || sig.Project != project || sig.Name != name || sig.Nonce == "" {
			t.Fatalf("after %s: signal %s (%v), want project %q name %q", what, b, err, project, name)
		}
	}
	check("publish", "web", "production")
	for range 3 { // the same write twice in one clock tick still differs
		if err := s.AliasSet(ctx, "web", "pr-1", res.Deployment); err != nil {
			t.Fatal(err)
		}
		check("alias set", "web", "pr-1")
	}
	if err := s.AliasDelete(ctx, "web", "pr-1"); err != nil {
		t.Fatal(err)
	}
	check("alias delete", "web", "pr-1")
	if err := s.DomainPut(ctx, &Domain{Host: "www.example.com", Project: "web"}); err != nil {
		t.Fatal(err)
	}
	check("domain put", "web", "www.example.com")
	before, _ := s.SignalGet(ctx)
	if err := s.AliasSet(ctx, "web", "pr-2", NewDeploymentID()); err == nil {
		t.Fatal("alias to a missing deployment accepted")
	}
	if after, _ := s.SignalGet(ctx); !bytes.Equal(before, after) {
		t.Error("a refused alias write moved the signal")
	}
}

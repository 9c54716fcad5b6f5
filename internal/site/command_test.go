package site

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"sort"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/storage"
)

func noEnv(string) string { return "" }

func TestPublishCommandJSON(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	dir := writeTree(t, map[string]string{"index.html": "i", "404.html": "nf", "a/b.js": "b", "ferry.json": `{"spa": true, "cleanUrls": false}`})
	var stdout, stderr bytes.Buffer
	args := []string{"--storage", "file://" + root, "--project", "web", "--alias", "production", "--alias", "pr-9", "--domain", "localhost:8081", "--json", dir}
	if err := publishCommand(ctx, args, &stdout, &stderr, noEnv); err != nil {
		t.Fatalf("publish: %v\n%s", err, stderr.String())
	}
	var out map[string]any
	dec := json.NewDecoder(&stdout)
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("stdout is not JSON: %v", err)
	}
	if dec.More() {
		t.Error("stdout holds more than one JSON value")
	}
	var keys []string
	for k := range out {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if got := strings.Join(keys, ","); got != "bytes,deployment,files,project,skipped,uploaded,urls" {
		t.Errorf("JSON keys = %s", got)
	}
	id, _ := out["deployment"].(string)
	if !IsDeploymentID(id) || out["project"] != "web" || out["files"] != 3.0 || out["uploaded"] != 3.0 || out["skipped"] != 0.0 || out["bytes"] != 4.0 {
		t.Errorf("output = %v", out)
	}
	urls, _ := out["urls"].([]any)
	want := []any{"http://" + id + "--web.localhost:8081", "http://web.localhost:8081", "http://pr-9--web.localhost:8081"}
	if len(urls) != 3 || urls[0] != want[0] || urls[1] != want[1] || urls[2] != want[2] {
		t.Errorf("urls = %v, want %v", urls, want)
	}
	if !strings.Contains(stderr.String(), "manifest written") {
		t.Errorf("stderr lacks progress: %s", stderr.String())
	}

	// DIR/ferry.json set the serving options and was not published.
	st, err := storage.NewFile(root)
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewStore(st).ManifestGet(ctx, "web", id)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Config.SPA || m.Config.CleanURLs {
		t.Errorf("config = %+v, want spa on and clean URLs off from ferry.json", m.Config)
	}
	if _, ok := m.Files["/ferry.json"]; ok {
		t.Error("ferry.json was published")
	}
}

func TestPublishCommandHuman(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := writeTree(t, map[string]string{"index.html": "i"})
	env := map[string]string{"FERRY_STORAGE": "file://" + root, "FERRY_PROJECT": "web", "FERRY_DOMAIN": "example.com", "FERRY_ALIAS": "production,pr-1"}
	var stdout, stderr bytes.Buffer
	if err := publishCommand(context.Background(), []string{dir}, &stdout, &stderr, func(k string) string { return env[k] }); err != nil {
		t.Fatalf("publish: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "https://dpl-") || lines[1] != "https://web.example.com" || lines[2] != "https://pr-1--web.example.com" {
		t.Errorf("stdout = %q", stdout.String())
	}
	if !strings.Contains(stderr.String(), "uploaded 1 blobs") || strings.Contains(stderr.String(), "level=") {
		t.Errorf("stderr = %q", stderr.String())
	}
}

func TestPublishCommandErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := writeTree(t, map[string]string{"index.html": "i"})
	store := "file://" + t.TempDir()
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--project", "web", dir}, "--storage is required"},
		{[]string{"--storage", store, dir}, "--project is required"},
		{[]string{"--storage", store, "--project", "web"}, "exactly one folder"},
		{[]string{"--storage", "ftp://x", "--project", "web", dir}, "unknown scheme"},
		{[]string{"--storage", store, "--project", "Web", dir}, "project name"},
		{[]string{"--storage", store, "--project", "web", "--alias", "dpl-1", dir}, "reserved"},
	} {
		var stdout, stderr bytes.Buffer
		err := publishCommand(ctx, tt.args, &stdout, &stderr, noEnv)
		if ferry.ExitCode(err) != ferry.ExitUser || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v (exit %d), want a user error mentioning %q", tt.args, err, ferry.ExitCode(err), tt.want)
		}
		if stdout.Len() != 0 {
			t.Errorf("%q: stdout = %q", tt.args, stdout.String())
		}
	}

	bad := writeTree(t, map[string]string{"index.html": "i", "ferry.json": `{"spa": "yes"}`})
	err := publishCommand(ctx, []string{"--storage", store, "--project", "web", bad}, &bytes.Buffer{}, &bytes.Buffer{}, noEnv)
	if ferry.ErrorCode(err) != ferry.EINVALID || !strings.Contains(err.Error(), "spa") {
		t.Errorf("bad ferry.json: %v", err)
	}

	var help bytes.Buffer
	err = publishCommand(ctx, []string{"-h"}, &bytes.Buffer{}, &help, noEnv)
	if !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h gave %v", err)
	}
	for _, f := range []string{"-storage", "-project", "-alias", "-domain", "-json", "FERRY_"} {
		if !strings.Contains(help.String(), f) {
			t.Errorf("-h output lacks %s:\n%s", f, help.String())
		}
	}
}

// Package ghwebhooks holds real GitHub webhook deliveries (the octokit/webhooks examples, MIT, see
// payloads/LICENSE) for the tests of every part that receives them: the App's intake, the Action's event
// reader, the end-to-end tests and the intake benchmark. They are embedded, so that a fresh clone of the
// repository tests with nothing beside it, and every test reads the same bytes GitHub sends.
package ghwebhooks

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"testing"
)

//go:embed payloads
var files embed.FS

// file turns a short name into the payload's file: "push" is push/payload.json, "pull_request/opened" is
// pull_request/opened.payload.json; a name ending in .json is taken as it is.
func file(name string) string {
	if !strings.Contains(name, "/") {
		return name + "/payload.json"
	}
	if !strings.HasSuffix(name, ".json") {
		name += ".payload.json"
	}
	return name
}

// Read returns a real delivery's body, for callers without a testing.TB (fuzz seeds, benchmarks).
func Read(name string) ([]byte, error) {
	b, err := files.ReadFile(path.Join("payloads", file(name)))
	if err != nil {
		return nil, fmt.Errorf("real webhook payload %q (see internal/ghwebhooks/payloads): %w", name, err)
	}
	return b, nil
}

// Payload returns a real delivery's body, or fails the test.
func Payload(t testing.TB, name string) []byte {
	t.Helper()
	b, err := Read(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Names lists the payload files of one event (as Read takes them), sorted, so that a test can run every variant.
func Names(event string) []string {
	entries, err := fs.ReadDir(files, path.Join("payloads", event))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".json") {
			out = append(out, event+"/"+e.Name())
		}
	}
	sort.Strings(out)
	return out
}

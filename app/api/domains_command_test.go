package api

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
)

// The command's happy path against the real API is in TestDomainsCommand (package api_test); this checks its
// refusals, which need no server.
func TestDomainsCommandUsage(t *testing.T) {
	env := func(string) string { return "" }
	for _, args := range [][]string{
		{},
		{"add"},
		{"list", "extra"},
		{"frobnicate", "x"},
		{"--project", "web", "list"},
	} {
		err := domainsCommand(context.Background(), args, io.Discard, io.Discard, env)
		if err == nil {
			t.Errorf("ferry domains %v: no error", args)
		}
	}
	var out bytes.Buffer
	err := domainsCommand(context.Background(), []string{"--project", "web", "list"}, &out, io.Discard, env)
	if err == nil || !strings.Contains(err.Error(), "token") {
		t.Fatalf("without a token: %v", err)
	}
}

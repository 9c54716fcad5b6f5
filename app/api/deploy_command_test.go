package api

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/ferry"
)

func TestDeployCommandArguments(t *testing.T) {
	t.Parallel()
	noEnv := func(string) string { return "" }
	var out, errOut bytes.Buffer
	err := deployCommand(context.Background(), []string{"https://example.com/a.git"}, &out, &errOut, noEnv)
	if ferry.ErrorCode(err) != ferry.EINVALID || !strings.Contains(err.Error(), "FERRY_TOKEN") {
		t.Errorf("no token: %v", err)
	}
	err = deployCommand(context.Background(), []string{"--token", "t"}, &out, &errOut, noEnv)
	if ferry.ErrorCode(err) != ferry.EINVALID || !strings.Contains(err.Error(), "exactly one repository") {
		t.Errorf("no repository: %v", err)
	}
	err = deployCommand(context.Background(), []string{"--server", "http://127.0.0.1:1", "--token", "t", "https://example.com/a.git"}, &out, &errOut, noEnv)
	if ferry.ErrorCode(err) != ferry.EUNAVAILABLE || !strings.Contains(err.Error(), "is it running?") {
		t.Errorf("no server: %v", err)
	}
	// A folder that is not a git repository is refused before anything is asked of the server: a server that
	// counts requests sees none.
	var asked int
	counting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { asked++ }))
	defer counting.Close()
	err = deployCommand(context.Background(), []string{"--server", counting.URL, "--token", "t", t.TempDir()}, &out, &errOut, noEnv)
	if ferry.ErrorCode(err) != ferry.EINVALID || !strings.Contains(err.Error(), "is not a git repository") || asked != 0 {
		t.Errorf("a plain folder: %v (server asked %d times)", err, asked)
	}
	// A server that is not Ferry.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("<html>")) }))
	defer srv.Close()
	err = deployCommand(context.Background(), []string{"--server", srv.URL, "--token", "t", "https://example.com/a.git"}, &out, &errOut, noEnv)
	if ferry.ErrorCode(err) != ferry.EUNAVAILABLE || !strings.Contains(err.Error(), "is --server a Ferry app?") {
		t.Errorf("not ferry: %v", err)
	}
	errOut.Reset()
	if err := deployCommand(context.Background(), []string{"-h"}, &out, &errOut, noEnv); err == nil || !strings.Contains(errOut.String(), "-server") || !strings.Contains(errOut.String(), "http://localhost:8080") {
		t.Errorf("-h: %v\n%s", err, errOut.String())
	}
}

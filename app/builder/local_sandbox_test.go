package builder_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/app/builder"
	"github.com/ferryhq/ferry/internal/build/buildtest"
	"github.com/ferryhq/ferry/internal/site"
)

// The operator's sandbox settings reach every local build: the build's "limits" line shows the allowed range
// and the limits that the flags set.
func TestLocalBuildSandboxSettings(t *testing.T) {
	t.Parallel()
	buildtest.RequireBwrap(t)
	e := newEnv(t)
	r := e.repo(t, "acme/limits", map[string]string{"index.html": "<h1>x</h1>"})
	l, err := builder.NewLocal(builder.LocalConfig{
		Command: buildtest.Command(), Timeout: time.Minute, KillGrace: 2 * time.Second,
		EgressAllow: []string{"10.1.2.0/24"}, MaxDiskMiB: 256, MaxTotalMemoryMiB: 1024,
	})
	if err != nil {
		t.Fatal(err)
	}
	var log lines
	if _, err := l.Build(context.Background(), builder.Request{DeploymentID: site.NewDeploymentID(), Project: "web",
		CloneURL: e.gitURL + r.Path, Ref: r.Commits[0], Token: e.token, Storage: e.storeURL, Log: log.add}); err != nil {
		t.Fatalf("build: %v\n%s", err, log.text())
	}
	text := log.text()
	var limits string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, "limits: ") {
			limits = l
		}
	}
	if !strings.Contains(limits, "10.1.2.0/24") {
		t.Errorf("the allowed range did not reach the build: %q\n%s", limits, text)
	}
	for _, want := range []string{"256 MiB", "1024 MiB"} {
		if !strings.Contains(limits, want) && !(want == "256 MiB" && strings.Contains(limits, "per file only")) &&
			!(want == "1024 MiB" && strings.Contains(limits, "per process only")) {
			t.Errorf("limits line lacks %s: %q", want, limits)
		}
	}
}

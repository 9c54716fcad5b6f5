// Package buildtest lets a package's test binary stand in for the ferry binary, so that tests of the parts that
// run `ferry build` as a process (the local builder, the jobs, the App, a fake ECS task) need no `go build` of
// the whole module: the child runs build.Command the way main does, with the same exit codes and the same
// final error line.
package buildtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/ferryhq/ferry/internal/build"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/netpolicy"
)

// envName is set in the environment of a test binary that is to act as ferry.
const envName = "FERRY_TEST_AS_FERRY"

// Env is the environment entry that makes a test binary calling Main act as ferry, for callers that start the
// test binary themselves (a fake ECS task: os.Args[0] with the task's command).
const Env = envName + "=1"

// Main is the package's TestMain: in a child started with Env it runs `ferry build` and exits with
// ferry.ExitCode; otherwise it runs the tests with next (pgtest.Main for packages that use PostgreSQL), or
// with m.Run and os.Exit when next is nil.
func Main(m *testing.M, next func(*testing.M)) {
	if os.Getenv(envName) != "" {
		os.Exit(run(os.Args[1:]))
	}
	if next == nil {
		os.Exit(m.Run())
	}
	next(m)
}

// Command is the command line that runs this test binary as `ferry build`, for builder.LocalConfig.Command and
// app.Config.BuildCommand. It sets Env through /usr/bin/env because app.Config has no environment of its own.
// The test package's TestMain must call Main. Clones may reach loopback (the tests' git servers live there);
// the builds' egress gets public addresses plus the npm registry's where this machine reaches it at a
// non-public one (an operator would pass the same --egress-allow).
func Command() []string {
	cmd := []string{"/usr/bin/env", Env, os.Args[0], "build", "--clone-allow", "127.0.0.0/8,::1"}
	if allow := RegistryAllow(); len(allow) > 0 {
		cmd = append(cmd, "--egress-allow", strings.Join(allow, ","))
	}
	return cmd
}

var registry struct {
	sync.Once
	allow []string
}

// RegistryAllow lists the addresses of npm's configured registry that the egress policy would refuse, as
// ranges of one address: what a test (or an operator behind a registry mirror) allows, and nothing more.
func RegistryAllow() []string {
	registry.Do(func() {
		out, err := exec.Command("npm", "config", "get", "registry").Output()
		if err != nil {
			return
		}
		u, err := url.Parse(strings.TrimSpace(string(out)))
		if err != nil || u.Hostname() == "" {
			return
		}
		ps, err := netpolicy.HostPrefixes(context.Background(), nil, u.Hostname())
		if err != nil {
			return
		}
		for _, p := range ps {
			if netpolicy.Classify(p.Addr()) != "" {
				registry.allow = append(registry.allow, p.String())
			}
		}
	})
	return registry.allow
}

func run(args []string) int {
	if len(args) == 0 || args[0] != "build" {
		fmt.Fprintln(os.Stderr, "test ferry: only build is supported")
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := build.Command(ctx, args[1:], os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferry build: %v\n", err)
	}
	return ferry.ExitCode(err)
}

// RequireBwrap stops a test that runs `ferry build` in its sandbox when bubblewrap is missing: a skip with the
// install hint locally, a failure when CI is set, since CI installs it.
func RequireBwrap(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("bwrap"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("bwrap is not installed; CI must apt-get install bubblewrap")
		}
		t.Skip("bwrap is not installed: apt-get install bubblewrap")
	}
}

// Command ferry is Ferry's one binary. This file only dispatches subcommands; each lives in the package that
// owns it (docs/architecture.md, "Subcommands").
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/ferryhq/ferry/action"
	"github.com/ferryhq/ferry/app"
	"github.com/ferryhq/ferry/app/api"
	"github.com/ferryhq/ferry/app/dev"
	"github.com/ferryhq/ferry/internal/build"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/retention"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/migrations"
	"github.com/ferryhq/ferry/proxy"
)

// command is one subcommand: it parses its own flags from args and writes results to stdout, progress to stderr.
type command struct {
	run   func(ctx context.Context, args []string, stdout, stderr io.Writer) error
	about string
}

var commands = map[string]command{
	"dev":     {dev.Command, dev.About},
	"publish": {site.PublishCommand, site.PublishAbout},
	"action":  {action.Command, action.About},
	"proxy":   {proxy.Command, proxy.About},
	"migrate": {migrations.Command, migrations.About},
	"build":   {build.Command, build.About},
	"app":     {app.Command, app.About},
	"deploy":  {api.DeployCommand, api.DeployAbout},
	"domains": {api.DomainsCommand, api.DomainsAbout},
	"gc":      {retention.Command, retention.About},
}

// order is how `ferry -h` lists the subcommands.
var order = []string{"dev", "app", "proxy", "build", "publish", "deploy", "domains", "action", "gc", "migrate"}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// version is set at release time: go build -ldflags "-X main.version=v1.2.3". Without it, ferry version
// reads what the Go toolchain recorded (the module version, or the commit a checkout was built from).
var version = ""

// versionString is what ferry version prints: "ferry v1.2.3", with the commit and whether the tree was
// modified when the build recorded them.
func versionString() string {
	v := version
	var rev, dirty string
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = ", modified"
				}
			}
		}
	}
	if v == "" {
		v = "devel"
	}
	out := "ferry " + v
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		out += " (commit " + rev + dirty + ")"
	}
	return out + " " + runtime.Version()
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && (args[0] == "version" || args[0] == "--version" || args[0] == "-version") {
		fmt.Fprintln(stdout, versionString())
		return ferry.ExitOK
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return ferry.ExitUser
		}
		return ferry.ExitOK
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "ferry: unknown command %q\n\n", args[0])
		usage(stderr)
		return ferry.ExitUser
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	slog.SetDefault(slog.New(slog.NewTextHandler(stderr, nil)))
	err := cmd.run(ctx, args[1:], stdout, stderr)
	switch {
	case err == nil:
		return ferry.ExitOK
	case errors.Is(err, flag.ErrHelp):
		return ferry.ExitOK
	}
	fmt.Fprintf(stderr, "ferry %s: %v\n", args[0], err)
	return ferry.ExitCode(err)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: ferry <command> [flags]\n\nCommands:")
	for _, name := range order {
		if c, ok := commands[name]; ok {
			fmt.Fprintf(w, "  %-8s %s\n", name, c.about)
		}
	}
	fmt.Fprintf(w, "  %-8s %s\n", "version", "prints the version (also --version)")
	fmt.Fprintln(w, "\nRun 'ferry <command> -h' for the flags of one command.")
}

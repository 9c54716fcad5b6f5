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

func run(args []string, stdout, stderr io.Writer) int {
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
	fmt.Fprintln(w, "\nRun 'ferry <command> -h' for the flags of one command.")
}

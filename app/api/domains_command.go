package api

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"text/tabwriter"

	"github.com/ferryhq/ferry/app/projects"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/flagenv"
)

// DomainsAbout is the one line `ferry -h` shows for `ferry domains`.
const DomainsAbout = "list, attach, check and remove a project's custom domains through a running Ferry"

// DomainsCommand is `ferry domains list|add|verify|remove`, a thin client of the custom-domain API.
func DomainsCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return domainsCommand(ctx, args, stdout, stderr, os.Getenv)
}

func domainsCommand(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flagenv.NewFlagSet("domains", "ferry domains [flags] list | add HOST | verify HOST | remove HOST",
		"Manages a project's custom domains through a running Ferry. `add` prints the DNS records that prove the\ndomain is yours; Ferry checks them until they hold, `verify` checks at once.", stderr)
	server := fs.String("server", "http://localhost:8080", "the Ferry app's `URL`")
	token := fs.String("token", "", "API `token` (prefer FERRY_TOKEN or FERRY_TOKEN_FILE)")
	project := fs.String("project", "", "project `name` (required)")
	alias := fs.String("alias", "", "with add: the `alias` the domain serves (default production)")
	redirect := fs.String("redirect-to", "", "with add: answer with a 301 to this `host` instead (apex → www)")
	if err := flagenv.Parse(fs, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return ferry.Errorf(ferry.EINVALID, "%w", err)
	}
	verb, rest := fs.Arg(0), fs.Args()
	if len(rest) > 0 {
		rest = rest[1:]
	}
	want := map[string]int{"list": 0, "add": 1, "verify": 1, "remove": 1}
	n, ok := want[verb]
	if !ok || len(rest) != n {
		fs.Usage()
		return ferry.Errorf(ferry.EINVALID, "say what to do: ferry domains list, or add|verify|remove HOST")
	}
	if *project == "" {
		return ferry.Errorf(ferry.EINVALID, "no project: pass --project NAME")
	}
	c, err := newClient(*server, *token)
	if err != nil {
		return err
	}
	base := "/projects/" + url.PathEscape(*project) + "/domains"
	var d projects.Domain
	switch verb {
	case "list":
		var out struct{ Domains []projects.Domain }
		if err := c.do(ctx, "GET", base, nil, &out); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "HOST\tSTATE\tSERVES\tREASON")
		for _, d := range out.Domains {
			serves := d.Alias
			if d.RedirectTo != "" {
				serves = "→ " + d.RedirectTo
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", d.Host, d.State, serves, d.Reason)
		}
		return tw.Flush()
	case "add":
		if err := c.do(ctx, "POST", base, projects.DomainAttachParams{Host: rest[0], Alias: *alias, RedirectTo: *redirect}, &d); err != nil {
			return err
		}
	case "verify":
		if err := c.do(ctx, "POST", base+"/"+url.PathEscape(rest[0])+"/verify", nil, &d); err != nil {
			return err
		}
	case "remove":
		if err := c.do(ctx, "DELETE", base+"/"+url.PathEscape(rest[0]), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "removed %s\n", rest[0])
		return nil
	}
	fmt.Fprintf(stdout, "%s: %s\n", d.Host, d.State)
	if d.Reason != "" {
		fmt.Fprintf(stdout, "  %s\n", d.Reason)
	}
	if d.State == projects.DomainStatePendingDNS {
		fmt.Fprintln(stdout, "  add one of these DNS records:")
		for _, r := range d.Records {
			fmt.Fprintf(stdout, "    %-5s %s  %s\n", r.Type, r.Name, r.Value)
		}
	}
	return nil
}

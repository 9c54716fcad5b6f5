package retention

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/flagenv"
	"github.com/ferryhq/ferry/internal/storage"
)

// About is the one-line description `ferry -h` shows for `ferry gc`.
const About = "delete old deployments, unreferenced blobs and stale caches by the retention policy"

// Command is `ferry gc`: the same collector the App runs periodically, for sites published without a server
// (the Action, `ferry publish`), for example from a scheduled workflow. Each deletion is logged on stderr with
// its reason; stdout gets a summary per project, or with --json one JSON object per project (Report).
func Command(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return command(ctx, args, stdout, stderr, os.Getenv)
}

// PolicyFlags adds a flag per policy field to flags, named prefix+name ("" for `ferry gc`, "retention-" for
// `ferry app`), defaulting to def, and returns the policy they fill. Both commands name the defaults alike.
func PolicyFlags(flags *flag.FlagSet, prefix string, def Policy) *Policy {
	p := def
	flags.IntVar(&p.RollbackWindow, prefix+"keep-production", def.RollbackWindow, "production deployments `N` kept for rollback besides the current one")
	flags.IntVar(&p.MinAgeHours, prefix+"min-age-hours", def.MinAgeHours, "nothing younger than `H` hours is deleted")
	flags.IntVar(&p.PreviewGraceDays, prefix+"preview-grace-days", def.PreviewGraceDays, "a preview no alias points at is deleted after `D` days")
	flags.IntVar(&p.StaleAfterDays, prefix+"stale-after-days", def.StaleAfterDays, "retire a preview alias nobody pushed to for `D` days (-1: never)")
	flags.IntVar(&p.CacheMaxAgeDays, prefix+"cache-max-age-days", def.CacheMaxAgeDays, "evict dependency caches saved more than `D` days ago")
	flags.Int64Var(&p.CacheMaxMB, prefix+"cache-max-mb", def.CacheMaxMB, "bound each project's dependency caches to `MB` megabytes, oldest evicted first")
	flags.IntVar(&p.LogRetentionDays, prefix+"log-retention-days", def.LogRetentionDays, "build logs are kept `D` days (the App's database only)")
	return &p
}

func command(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	flags := flagenv.NewFlagSet("gc", "ferry gc [flags]",
		"Collects garbage in a Ferry storage by the retention policy: production deployments outside the rollback\n"+
			"window, previews without an alias after their grace period, blobs no kept deployment names, old dependency\n"+
			"caches; retires preview aliases nobody pushed to. Never deletes an alias's target or anything younger than\n"+
			"--min-age-hours, and waits for no publish: a project with a publish in progress is left for the next run.\n"+
			"Safe to run while sites are published and served, and to interrupt.", stderr)
	storageURL := flags.String("storage", "", "storage `URL`: file:///var/lib/ferry or s3://BUCKET/PREFIX?region=R (required)")
	project := flags.String("project", "", "collect only project `NAME` (default: every project in storage)")
	dry := flags.Bool("dry-run", false, "print what would be deleted, with reasons and bytes, and delete nothing")
	asJSON := flags.Bool("json", false, "print one JSON object per project on stdout instead of a summary")
	pol := PolicyFlags(flags, "", Defaults)
	if err := flagenv.Parse(flags, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return ferry.Errorf(ferry.EINVALID, "%w", err)
	}
	switch {
	case flags.NArg() != 0:
		return ferry.Errorf(ferry.EINVALID, "ferry gc takes no arguments, got %q; name a project with --project", flags.Args())
	case *storageURL == "":
		return ferry.Errorf(ferry.EINVALID, "--storage is required (or FERRY_STORAGE): for example file:///var/lib/ferry or s3://bucket/prefix?region=eu-west-1")
	}
	*pol = pol.Over(Defaults) // 0 means the default here too
	if err := pol.Validate(); err != nil {
		return err
	}
	st, err := storage.Open(ctx, *storageURL)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{ReplaceAttr: dropTimeAndLevel}))
	c := &Collector{Storage: st, Log: log, DryRun: *dry}
	projects := []string{*project}
	if *project == "" {
		if projects, err = c.Projects(ctx); err != nil {
			return err
		}
		log.Info("projects found", "projects", len(projects))
	}
	domains, domainsOK := c.DomainAliases(ctx)
	log.Info("policy", "policy", pol.String(), "dry_run", *dry)
	var totalN int
	var totalB int64
	var failed []string
	for i, p := range projects {
		log.Info("collecting", "project", p, "n", i+1, "of", len(projects))
		rep, err := c.Project(ctx, p, *pol, domains[p], domainsOK)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			log.Error("project not collected", "project", p, "err", err)
			failed = append(failed, p)
			continue
		}
		n, b := rep.Bytes()
		totalN += n
		totalB += b
		if *asJSON {
			if err := json.NewEncoder(stdout).Encode(rep); err != nil {
				return err
			}
			continue
		}
		verb := "deleted"
		if *dry {
			verb = "would delete"
		}
		line := fmt.Sprintf("%s: %s %d objects, %s (stored: %d deployments, %d blobs, %s)", p, verb, n, humanBytes(b),
			rep.Before.Deployments, rep.Before.Blobs, humanBytes(rep.Before.Bytes()))
		if rep.Skipped != "" {
			line += "; deployments and blobs skipped: " + rep.Skipped
		}
		fmt.Fprintln(stdout, line)
	}
	if !*asJSON && len(projects) > 1 {
		fmt.Fprintf(stdout, "total: %d objects, %s\n", totalN, humanBytes(totalB))
	}
	if len(failed) > 0 {
		return ferry.Errorf(ferry.EUNAVAILABLE, "%d of %d projects not collected (%v); see the errors above and run again", len(failed), len(projects), failed)
	}
	return nil
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func dropTimeAndLevel(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey) {
		return slog.Attr{}
	}
	return a
}

package site

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/flagenv"
	"github.com/ferryhq/ferry/internal/siteconfig"
	"github.com/ferryhq/ferry/internal/storage"
)

// PublishAbout is the one-line description `ferry -h` shows for `ferry publish`.
const PublishAbout = "publish an already-built folder as a new deployment"

// PublishCommand is `ferry publish DIR`: it publishes DIR to --storage as a new deployment of --project and
// points each --alias at it. With --json, stdout gets exactly one JSON object (PublishResult) for scripts;
// otherwise it gets the URLs, one a line, and stderr the progress.
func PublishCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return publishCommand(ctx, args, stdout, stderr, os.Getenv)
}

func publishCommand(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	flags := flagenv.NewFlagSet("publish", "ferry publish [flags] DIR", "Publishes the built site in DIR as a new, immutable deployment: uploads the files that storage lacks,\nwrites the manifest last, then points each --alias at it. DIR/ferry.json, if present, sets the serving options.", stderr)
	storageURL := flags.String("storage", "", "storage `URL`: file:///var/lib/ferry or s3://BUCKET/PREFIX?region=R (required)")
	project := flags.String("project", "", "project `NAME`: lowercase letters, digits and single hyphens (required)")
	var aliases flagenv.StringList
	flags.Var(&aliases, "alias", "alias `NAME` to point at the new deployment, such as production or pr-42 (repeatable)")
	domain := flags.String("domain", "", "domain `D` the proxy serves, used only to print URLs: example.com, localhost:8081 or https://example.com (default none: print no URLs)")
	hashCache := flags.String("hash-cache", "auto", "`file` that remembers file hashes between publishes of DIR, so unchanged files are not read again (a hash is reused only when inode, size, mtime and ctime all match); auto: under $XDG_CACHE_HOME/ferry, off: hash every file")
	asJSON := flags.Bool("json", false, "print one JSON object on stdout (project, deployment, urls, uploaded, skipped, files, bytes) instead of text (default false)")
	if err := flagenv.Parse(flags, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return ferry.Errorf(ferry.EINVALID, "%w", err)
	}
	switch {
	case flags.NArg() != 1:
		return ferry.Errorf(ferry.EINVALID, "want exactly one folder to publish, got %d arguments; usage: ferry publish [flags] DIR", flags.NArg())
	case *storageURL == "":
		return ferry.Errorf(ferry.EINVALID, "--storage is required (or FERRY_STORAGE): for example file:///var/lib/ferry or s3://bucket/prefix?region=eu-west-1")
	case *project == "":
		return ferry.Errorf(ferry.EINVALID, "--project is required (or FERRY_PROJECT): the name the site is served under, such as web")
	}
	dir := flags.Arg(0)
	settings, err := readSettings(dir)
	if err != nil {
		return err
	}
	st, err := storage.Open(ctx, *storageURL)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{ReplaceAttr: dropTimeAndLevel}))
	res, err := NewStore(st).Publish(ctx, PublishParams{
		Project:   *project,
		Dir:       dir,
		Aliases:   aliases,
		Settings:  settings,
		Domain:    *domain,
		Log:       log,
		HashCache: hashCacheFlag(*hashCache),
	})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		return enc.Encode(res)
	}
	fmt.Fprintf(stderr, "published %s %s: %d files, %d bytes; uploaded %d blobs, %d already stored\n",
		res.Project, res.Deployment, res.Files, res.Bytes, res.Uploaded, res.Skipped)
	if len(res.URLs) == 0 {
		fmt.Fprintln(stderr, "pass --domain to print the deployment's URLs")
		fmt.Fprintln(stdout, res.Deployment)
		return nil
	}
	for _, u := range res.URLs {
		fmt.Fprintln(stdout, u)
	}
	return nil
}

// readSettings reads DIR/ferry.json; a folder without one gets the defaults (nil).
func readSettings(dir string) (*siteconfig.File, error) {
	data, err := os.ReadFile(filepath.Join(dir, settingsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, ferry.Errorf(ferry.EINVALID, "read %s: %w", settingsFile, err)
	}
	f, err := siteconfig.ParseFile(data)
	if err != nil {
		if ferry.ErrorCode(err) != ferry.EINTERNAL {
			return nil, err
		}
		return nil, ferry.Errorf(ferry.EINVALID, "%s: %w", filepath.Join(dir, settingsFile), err)
	}
	return f, nil
}

// dropTimeAndLevel keeps progress lines short for people: "msg=\"files hashed\" files=3 bytes=120".
func dropTimeAndLevel(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey) {
		return slog.Attr{}
	}
	return HumanAttr(groups, a)
}

// hashCacheFlag maps --hash-cache to PublishParams.HashCache.
func hashCacheFlag(v string) string {
	if v == "off" || v == "none" {
		return ""
	}
	return v
}

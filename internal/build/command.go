package build

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/flagenv"
	"github.com/ferryhq/ferry/internal/netpolicy"
	"github.com/ferryhq/ferry/internal/siteconfig"
	"github.com/ferryhq/ferry/internal/workroot"
)

// About is the one-line description that `ferry -h` shows.
const About = "builds one commit in a sandbox and publishes it"

// Command is `ferry build`. Progress goes to stderr as log lines; with --json the result goes to stdout.
func Command(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flagenv.NewFlagSet("build", "ferry build --repo URL --ref REF --project NAME --storage URL [flags]",
		"Clones one commit, detects how to build it (ferry.json, lockfile, package.json), runs the install and build\n"+
			"commands in a bubblewrap sandbox, and publishes the output folder as a new deployment.\n"+
			"Exit codes: 0 published, 2 the build or its input is at fault (do not retry), 1 infrastructure error (retry).", stderr)
	var (
		p          Params
		aliases    flagenv.StringList
		tokenFile  string
		storageURL string
		envFile    string
		jsonOut    bool
		logFormat  string
		limits     = DefaultLimits
		memoryMiB  int64
		outputMiB  int64
		diskMiB    int64
		totalMiB   int64
		egressList flagenv.StringList
		cloneList  flagenv.StringList
	)
	fs.StringVar(&p.Repo, "repo", "", "repository: https clone URL, file:// URL or local path (required)")
	fs.StringVar(&p.Ref, "ref", "", "full commit SHA, branch or tag to build (default: the remote's HEAD)")
	fs.StringVar(&tokenFile, "token-file", "", "file holding an installation token for https clones (sent as x-access-token)")
	fs.StringVar(&p.Project, "project", "", "project name (required)")
	fs.StringVar(&storageURL, "storage", "", "storage URL: file:///path or s3://bucket/prefix?region=... (required)")
	fs.StringVar(&p.CacheScope, "cache-scope", CacheScopePreview, "how far the commit is trusted, which picks the dependency cache it reads and writes: production (the production branch), preview (the repository's own branches and pull requests; never reads or writes production's) or fork (a pull request from another repository: no cache at all)")
	fs.Var(&aliases, "alias", "alias to point at the new deployment (repeatable)")
	fs.StringVar(&p.Domain, "domain", "", "domain used to print the deployment's URLs")
	fs.StringVar(&p.DeploymentID, "deployment-id", "", "deployment id to use (default: a new one)")
	fs.StringVar(&envFile, "env-file", "", "file of KEY=VALUE lines: the project's env vars for the build (values are masked in logs)")
	fs.BoolVar(&jsonOut, "json", false, "print the result as JSON on stdout (ferry publish --json's object plus build_seconds)")
	fs.StringVar(&logFormat, "log-format", "text", "log format on stderr: text or json")
	fs.StringVar(&p.Sandbox, "sandbox", SandboxBwrap, "bwrap, or none to run build commands unsandboxed (trusted code only)")
	fs.DurationVar(&limits.Timeout, "timeout", DefaultLimits.Timeout, "wall-clock limit for install plus build")
	fs.IntVar(&limits.Processes, "max-processes", DefaultLimits.Processes, "process limit of the build user (RLIMIT_NPROC)")
	fs.Int64Var(&memoryMiB, "max-memory-mib", DefaultLimits.Memory>>20, "memory limit per build process in MiB (RLIMIT_DATA)")
	fs.Int64Var(&totalMiB, "max-total-memory-mib", DefaultLimits.TotalMemory>>20, "memory limit of the build's processes together in MiB, files written to its in-memory workspace included (a memory cgroup, where the host has a writable one)")
	fs.Int64Var(&diskMiB, "max-disk-mib", DefaultLimits.Disk>>20, "size limit of the whole workspace in MiB: checkout, node_modules and caches (a tmpfs, when ferry runs as root)")
	fs.Int64Var(&outputMiB, "max-output-mib", DefaultLimits.OutputSize>>20, "size limit of the output folder in MiB")
	fs.IntVar(&limits.LogLines, "max-log-lines", DefaultLimits.LogLines, "output lines logged before the rest is dropped")
	fs.Var(&egressList, "egress-allow", "`CIDR` range (or address) beyond the public internet that the build's egress proxy and the clone may reach, such as an internal registry's 10.1.2.0/24; repeatable or comma-separated (default: public addresses only; loopback, link-local, private and reserved ranges are refused)")
	fs.Var(&cloneList, "clone-allow", "`CIDR` range that only the clone may reach on top of --egress-allow, such as 127.0.0.0/8 for a git server on this machine; repeatable or comma-separated (default: none)")
	fs.StringVar(&p.WorkDir, "workdir", "", "folder in which the workspace goes, below ferry-work/run-<random>/; what crashed runs left in ferry-work is removed at start (default: the system temp folder)")
	fs.StringVar(&p.ToolCache, "tool-cache", DefaultToolCache(), "folder for node releases fetched when a site's nodeVersion or engines.node asks for a node this builder lacks, bound read-only into builds; \"\" fetches none (a mismatch then fails the build)")
	over := &siteconfig.File{}
	fs.Var(optString{&over.BuildCommand}, "build-command", "build `command`, overriding ferry.json's buildCommand; \"\" builds nothing (default: ferry.json's, else package.json's scripts.build)")
	fs.Var(optString{&over.InstallCommand}, "install-command", "install `command`, overriding ferry.json's installCommand; \"\" installs nothing (default: ferry.json's, else from the lockfile)")
	fs.StringVar(&over.RootDirectory, "root-directory", "", "the site's folder in the repository, overriding ferry.json's rootDirectory (default: ferry.json's, else the top)")
	fs.StringVar(&over.OutputDirectory, "output-directory", "", "output folder relative to the root directory, overriding ferry.json's outputDirectory (default: ferry.json's, else the detected framework's, else the first of dist, build, out, public)")
	evf := addEventsFlags(fs)
	if err := flagenv.Parse(fs, args, os.Getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return ferry.Errorf(ferry.EINVALID, "%v", err)
	}
	if fs.NArg() > 0 {
		return ferry.Errorf(ferry.EINVALID, "unexpected arguments %q; see ferry build -h", fs.Args())
	}
	h, err := NewLogHandler(stderr, logFormat)
	if err != nil {
		return ferry.Errorf(ferry.EINVALID, "--log-format: %v", err)
	}
	p.Log = slog.New(h)
	limits.Memory, limits.OutputSize = memoryMiB<<20, outputMiB<<20
	limits.Disk, limits.TotalMemory = diskMiB<<20, totalMiB<<20
	if p.Egress.Allow, err = netpolicy.ParsePrefixes(splitCommas(egressList)); err != nil {
		return ferry.Errorf(ferry.EINVALID, "--egress-allow: %w", err)
	}
	if p.CloneAllow, err = netpolicy.ParsePrefixes(splitCommas(cloneList)); err != nil {
		return ferry.Errorf(ferry.EINVALID, "--clone-allow: %w", err)
	}
	p.Limits = limits
	p.Aliases = aliases
	p.Overrides = over
	if tokenFile != "" {
		b, err := readSecretFile(tokenFile)
		if err != nil {
			return ferry.Errorf(ferry.EINVALID, "--token-file: %v", err)
		}
		p.Token = strings.TrimSpace(string(b))
	}
	if envFile != "" {
		if p.Env, err = readEnvFile(envFile); err != nil {
			return err
		}
	}
	// The workspace goes into a folder of this process's own, and what a crashed run left is removed first.
	wr, err := workroot.Open(p.WorkDir, p.Log)
	if err != nil {
		return err
	}
	defer wr.Close()
	p.WorkDir = wr.Dir
	if p.Repo == "" || p.Project == "" || storageURL == "" {
		return ferry.Errorf(ferry.EINVALID, "--repo, --project and --storage are required; see ferry build -h")
	}
	evs, err := evf.start(ctx, &p, http.DefaultClient) // events.go: secrets and log streaming for ECS builds
	if err != nil {
		return err
	}
	if p.Storage, err = evs.openStorage(ctx, storageURL); err != nil {
		return evs.finish(ctx, nil, err)
	}
	res, err := Run(ctx, p)
	if err = evs.finish(ctx, res, err); err != nil {
		return err
	}
	if jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return fmt.Errorf("write result: %w", err)
		}
		return nil
	}
	fmt.Fprintf(stdout, "published %s/%s (commit %s) in %.1fs\n", res.Project, res.Deployment, res.Commit, res.BuildSeconds)
	for _, u := range res.URLs {
		fmt.Fprintln(stdout, u)
	}
	return nil
}

// splitCommas reads a list flag given as repeated flags, comma-separated values, or both.
func splitCommas(l []string) []string {
	var out []string
	for _, v := range l {
		out = append(out, strings.Split(v, ",")...)
	}
	return out
}

// optString is a string flag that tells "not given" (nil) from "given empty", so that --build-command ""
// can turn the build off where leaving the flag out keeps ferry.json's command.
type optString struct{ p **string }

func (o optString) String() string {
	if o.p == nil || *o.p == nil {
		return ""
	}
	return **o.p
}

func (o optString) Set(v string) error { *o.p = &v; return nil }

// readEnvFile reads the project's env vars from a file, which keeps secret values out of argv.
func readEnvFile(path string) (map[string]string, error) {
	b, err := readSecretFile(path)
	if err != nil {
		return nil, ferry.Errorf(ferry.EINVALID, "--env-file: %v", err)
	}
	return ParseEnv(bytes.NewReader(b), path)
}

// maxSecretFile bounds a token or env file.
const maxSecretFile = 4 << 20

// readSecretFile reads a secret file, which the App's local builder hands over as /dev/fd/N: an inherited
// memory file descriptor. That descriptor is closed once read, so that it never reaches the build's commands
// (exec keeps inherited descriptors open in every child).
func readSecretFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	f.Close()
	if n, ok := strings.CutPrefix(path, "/dev/fd/"); ok {
		if fd, convErr := strconv.Atoi(n); convErr == nil && fd > 2 {
			syscall.Close(fd)
		}
	}
	if err == nil && len(b) > maxSecretFile {
		err = fmt.Errorf("%s is over %d MiB", path, maxSecretFile>>20)
	}
	return b, err
}

// ParseEnv reads KEY=VALUE lines: blank lines and # comments are skipped, an "export " prefix is allowed, and
// the value is everything after the first "=", kept verbatim. Errors name the line (name:line).
func ParseEnv(r io.Reader, name string) (map[string]string, error) {
	env := map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(strings.TrimPrefix(k, "export "))
		if !ok || !validEnvName(k) {
			return nil, ferry.Errorf(ferry.EINVALID, "%s:%d: want KEY=VALUE with KEY made of letters, digits and _", name, n)
		}
		env[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, ferry.Errorf(ferry.EINVALID, "%s: %v", name, err)
	}
	return env, nil
}

func validEnvName(k string) bool {
	if k == "" || k[0] >= '0' && k[0] <= '9' {
		return false
	}
	for _, c := range k {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

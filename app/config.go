package app

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/ferryhq/ferry/app/builder"
	"github.com/ferryhq/ferry/app/webhook"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/flagenv"
	"github.com/ferryhq/ferry/internal/netpolicy"
	"github.com/ferryhq/ferry/internal/retention"
)

// Config is everything `ferry app` runs with. Command fills it from flags and FERRY_* variables; `ferry dev`
// and tests fill it directly and call Run.
type Config struct {
	// Listen is the HTTP address. Default ":8080". Ignored when Listener is set.
	Listen string
	// Listener, when set, is used instead of Listen (tests pass a 127.0.0.1:0 listener).
	Listener net.Listener
	// DatabaseURL is the PostgreSQL URL. Required.
	DatabaseURL string
	// Storage is the storage URL the builds publish to (file:// or s3://). Required.
	Storage string
	// Domain is what site host names end in. Default "localhost".
	Domain string
	// DNSServer (host:port) answers custom-domain ownership checks; default the system's resolver.
	DNSServer string
	// DomainCheckInterval is how often pending custom domains are checked again. Default 30s.
	DomainCheckInterval time.Duration
	// PublicURL is the App's own URL, for log links on GitHub. Default: none.
	PublicURL string
	// GitHubAppID and GitHubPrivateKey identify the GitHub App. Both or neither: with neither, nothing is
	// reported to GitHub and clones go without a token (`ferry dev` with a bare git URL).
	GitHubAppID      int64
	GitHubPrivateKey []byte
	// WebhookSecret is the App's webhook secret. Required with GitHubAppID; without either, the server starts
	// with no App and refuses webhooks until one is created from the dashboard (app/githubapp).
	WebhookSecret string
	// FallbackWebhookSecret checks deliveries when neither WebhookSecret nor an App created from the dashboard
	// gives one: ferry dev's generated secret.
	FallbackWebhookSecret string
	// GitHubAPIURL is the REST API root. Default https://api.github.com.
	GitHubAPIURL string
	// GitHubURL is GitHub's web root: the OAuth pages and the App manifest form. Default: derived from
	// GitHubAPIURL (https://github.com, or https://HOST for https://HOST/api/v3).
	GitHubURL string
	// NoGitHubApp, when set, is called once at start with the dashboard page that creates the GitHub App, when
	// no App is configured (`ferry dev` prints it).
	NoGitHubApp func(setupURL string)
	// GitHubClientID and GitHubClientSecret are the App's OAuth credentials for "Sign in with GitHub". Both or
	// neither: with neither, people sign in with a password only.
	GitHubClientID     string
	GitHubClientSecret string
	// DevSignIn, when set, is called once at start with a one-time sign-in link for dev@localhost (created if
	// needed), for `ferry dev`.
	DevSignIn func(link string)
	// Builder picks where builds run: "local" (the default) runs `ferry build` as a sub-process, "ecs" as one
	// ECS task per build (configured by ECS).
	Builder string
	// ECS configures the ECS builder (--ecs-* flags). Grants, EventsURL and the clients are filled in by Run:
	// EventsURL from PublicURL, the clients from the SDK's default chain unless set (tests).
	ECS builder.ECSConfig
	// SecretKeyFile holds the key that encrypts projects' env vars: 32 random bytes, raw or base64
	// (store.LoadSecretKey; `ferry dev` makes one with store.EnsureSecretKeyFile). Empty: env vars are off.
	SecretKeyFile string
	// ProtectionKeyFile holds the key (32+ bytes) that signs members' hand-offs to protected sites; ferry proxy
	// gets the same file. Empty: members cannot sign in to protected sites (passwords and share links still work).
	ProtectionKeyFile string
	// AllowLocalRepos lets users create projects from local paths and file:// URLs (`ferry dev` only), inside
	// LocalReposDir when that is set.
	AllowLocalRepos bool
	LocalReposDir   string
	// Signup is who may create an account: "closed" (the default), "invite" or "open" (auth.Signup*).
	// SignupEmailDomains and SignupGitHubOrgs restrict open sign-up (auth.Config).
	Signup             string
	SignupEmailDomains []string
	SignupGitHubOrgs   []string
	// MetricsToken, when set, lets /metrics on the main listener answer requests that carry
	// "Authorization: Bearer <MetricsToken>". MetricsListen (or MetricsListener, for tests) serves /metrics
	// without a token on an address of its own, for a private interface. With neither, /metrics is not served.
	MetricsToken    string
	MetricsListen   string
	MetricsListener net.Listener
	// CanonicalHost sends browsers that open a dashboard page on another host name (http://localhost:8080) to
	// PublicURL's host (http://app.localhost:8080), so that its cookies live on that host alone (`ferry dev`).
	CanonicalHost bool
	// GitAllowRanges are non-public ranges that users' git URLs may reach (an internal git host); everything
	// else that is not public internet is refused before git connects (internal/netpolicy).
	GitAllowRanges []netip.Prefix
	// GitAllowLoopback lets git URLs reach 127.0.0.0/8 and ::1 (`ferry dev` only).
	GitAllowLoopback bool
	// GitAllowHTTP accepts http:// git URLs besides https:// (`ferry dev` sets it).
	GitAllowHTTP bool
	// Concurrency is the number of builds run at once. Default 2.
	Concurrency int
	// MaxBodyBytes caps a webhook body. Default webhook.DefaultMaxBodyBytes (8 MiB).
	MaxBodyBytes int64
	// WebhookPendingBytes bounds the memory of all webhook bodies not verified yet. Default
	// webhook.DefaultPendingBytes (32 MiB).
	WebhookPendingBytes int64
	// ShutdownTimeout bounds a graceful stop: open requests, then running jobs (which are then canceled and
	// retried by the next start). Default 30s.
	ShutdownTimeout time.Duration
	// Ready, when set, is called with the listening address once the server accepts requests.
	Ready func(addr string)
	// Build configures the local builder's sandbox: the ranges builds may reach beyond the public internet
	// (--build-egress-allow, --build-clone-allow) and the limits on a build as a whole.
	Build BuildConfig
	// BuildCommand replaces the local builder's `ferry build` command (builder.LocalConfig.Command), for tests
	// and `ferry dev`. Default: this executable's build subcommand.
	BuildCommand []string
	// Retention is the default retention policy of every project (--retention-*); zero fields take
	// retention.Defaults, which `ferry dev` and `ferry gc` use too.
	Retention retention.Policy
	// RetentionInterval is how often storage is collected. Default 1h; negative: never.
	RetentionInterval time.Duration
}

// BuildConfig is what `ferry app` passes on to every local `ferry build` (see its -h).
type BuildConfig struct {
	EgressAllow, CloneAllow       []string
	MaxDiskMiB, MaxTotalMemoryMiB int64
}

// BuildFlags registers the --build-* flags of the sandbox on fs, for `ferry app` and `ferry dev`. Call the
// function it returns after parsing: it fills b's lists and checks the ranges, so that a typo fails the start
// rather than every build.
func BuildFlags(fs *flag.FlagSet, b *BuildConfig) func() error {
	var egress, clone flagenv.StringList
	fs.Var(&egress, "build-egress-allow", "`CIDR` range beyond the public internet that builds may reach through their egress proxy, such as an internal registry's 10.1.2.0/24 (repeatable or comma-separated; default: public addresses only)")
	fs.Var(&clone, "build-clone-allow", "`CIDR` range that only the clone of a build may reach, such as 127.0.0.0/8 for a git server on this machine (default: none)")
	fs.Int64Var(&b.MaxDiskMiB, "build-max-disk-mib", 4096, "size limit of a build's whole workspace in MiB (checkout and node_modules included)")
	fs.Int64Var(&b.MaxTotalMemoryMiB, "build-max-total-memory-mib", 6144, "memory limit of a build's processes together in MiB")
	return func() error {
		split := func(l []string) []string {
			var out []string
			for _, v := range l {
				for _, r := range strings.Split(v, ",") {
					if r = strings.TrimSpace(r); r != "" {
						out = append(out, r)
					}
				}
			}
			return out
		}
		b.EgressAllow, b.CloneAllow = append(b.EgressAllow, split(egress)...), append(b.CloneAllow, split(clone)...)
		if _, err := netpolicy.ParsePrefixes(b.EgressAllow); err != nil {
			return ferry.Errorf(ferry.EINVALID, "--build-egress-allow: %w", err)
		}
		if _, err := netpolicy.ParsePrefixes(b.CloneAllow); err != nil {
			return ferry.Errorf(ferry.EINVALID, "--build-clone-allow: %w", err)
		}
		return nil
	}
}

func (c Config) withDefaults() (Config, error) {
	if c.Listen == "" {
		c.Listen = ":8080"
	}
	if c.Domain == "" {
		c.Domain = "localhost"
	}
	if c.Builder == "" {
		c.Builder = "local"
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 2
	}
	if c.Signup == "" {
		c.Signup = "closed"
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = webhook.DefaultMaxBodyBytes
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	switch {
	case c.DatabaseURL == "":
		return c, missing("database-url", "postgres://USER@HOST:5432/DB")
	case c.Storage == "":
		return c, missing("storage", "file:///var/lib/ferry or s3://BUCKET/PREFIX?region=R")
	case c.GitHubAppID != 0 && c.WebhookSecret == "":
		return c, ferry.Errorf(ferry.EINVALID, "--github-app-id is set but no webhook secret: pass --webhook-secret, or set FERRY_WEBHOOK_SECRET or FERRY_WEBHOOK_SECRET_FILE (the secret set in the GitHub App's settings)")
	case c.GitHubAppID != 0 && len(c.GitHubPrivateKey) == 0:
		return c, ferry.Errorf(ferry.EINVALID, "--github-app-id is set but no private key: pass --github-private-key-file FILE (FERRY_GITHUB_PRIVATE_KEY_FILE) or the PEM itself with --github-private-key (FERRY_GITHUB_PRIVATE_KEY)")
	case (c.GitHubClientID == "") != (c.GitHubClientSecret == ""):
		return c, ferry.Errorf(ferry.EINVALID, "GitHub sign-in needs both --github-client-id and --github-client-secret (from the GitHub App's settings page), or neither")
	case c.GitHubAppID == 0 && len(c.GitHubPrivateKey) > 0:
		return c, ferry.Errorf(ferry.EINVALID, "a GitHub private key is set but no App id: pass --github-app-id or set FERRY_GITHUB_APP_ID")
	case c.Builder != "local" && c.Builder != "ecs":
		return c, ferry.Errorf(ferry.EINVALID, "unknown --builder %q (use local or ecs)", c.Builder)
	case c.Signup != "" && c.Signup != "closed" && c.Signup != "invite" && c.Signup != "open":
		return c, ferry.Errorf(ferry.EINVALID, "unknown --signup %q: use closed (nobody signs up), invite (with a link a user makes) or open (anyone, within --signup-email-domains and --signup-github-orgs)", c.Signup)
	case c.Builder == "ecs" && c.PublicURL == "":
		return c, ferry.Errorf(ferry.EINVALID, "--builder ecs needs --public-url: build tasks send their logs to this server")
	}
	if c.GitHubURL == "" {
		c.GitHubURL = webURL(c.GitHubAPIURL)
	}
	if u, err := url.Parse(c.GitHubURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return c, ferry.Errorf(ferry.EINVALID, "--github-url %q is not an http(s) URL (https://github.com, or https://HOST for GitHub Enterprise Server)", c.GitHubURL)
	}
	c.GitHubURL = strings.TrimSuffix(c.GitHubURL, "/")
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return c, ferry.Errorf(ferry.EINVALID, "--public-url %q is not an http(s) URL (for example https://ferry.example.com)", c.PublicURL)
		}
		c.PublicURL = strings.TrimSuffix(c.PublicURL, "/")
	}
	return c, nil
}

func missing(flagName, example string) error {
	return ferry.Errorf(ferry.EINVALID, "no --%s given: pass --%s %s or set %s", flagName, flagName, example, flagenv.EnvName(flagName))
}

// parseFlags turns `ferry app` arguments and FERRY_* variables into a Config.
func parseFlags(args []string, stderr io.Writer, getenv func(string) string) (Config, error) {
	fs := flagenv.NewFlagSet("app", "ferry app [flags]",
		"Runs the GitHub App: webhook intake on POST /webhooks/github, the build queue and its workers, the dashboard\nand API, /healthz, and /metrics behind --metrics-token or on --metrics-listen. Migrates the database at start.", stderr)
	var c Config
	fs.StringVar(&c.Listen, "listen", ":8080", "`address` to serve HTTP on")
	fs.StringVar(&c.DatabaseURL, "database-url", "", "PostgreSQL `URL`, for example postgres://ferry@db:5432/ferry (required)")
	fs.StringVar(&c.Storage, "storage", "", "storage `URL` builds publish to: file:///var/lib/ferry or s3://BUCKET/PREFIX?region=R (required)")
	fs.StringVar(&c.Domain, "domain", "localhost", "domain `D` that site host names end in")
	fs.StringVar(&c.DNSServer, "dns-server", "", "DNS `server` (host:port) that custom-domain ownership checks ask (default: the system's resolver)")
	fs.DurationVar(&c.DomainCheckInterval, "domain-check-interval", 30*time.Second, "how often custom domains still waiting for their DNS record are checked again")
	fs.StringVar(&c.PublicURL, "public-url", "", "this server's public `URL`, for build log links on GitHub (default: no links)")
	fs.Int64Var(&c.GitHubAppID, "github-app-id", 0, "the GitHub App's `id` (from its settings page); with --github-private-key-file or --github-private-key. Without it, the server's owner can create the App from the dashboard (/settings/github-app); flags win over that App")
	privateKey := GitHubKeyFlags(fs)
	fs.StringVar(&c.WebhookSecret, "webhook-secret", "", "the GitHub App's webhook `secret` (required with --github-app-id; prefer FERRY_WEBHOOK_SECRET_FILE); wins over the App created from the dashboard")
	fs.StringVar(&c.GitHubClientID, "github-client-id", "", "the GitHub App's OAuth client `id`, for \"Sign in with GitHub\"; with --github-client-secret")
	fs.StringVar(&c.GitHubClientSecret, "github-client-secret", "", "the GitHub App's OAuth client `secret` (prefer FERRY_GITHUB_CLIENT_SECRET_FILE)")
	fs.StringVar(&c.GitHubAPIURL, "github-api-url", "https://api.github.com", "GitHub REST API root `URL` (https://HOST/api/v3 for GitHub Enterprise Server)")
	fs.StringVar(&c.GitHubURL, "github-url", "", "GitHub's web root `URL`, for sign-in and the App manifest form (default: from --github-api-url, https://github.com or https://HOST)")
	fs.StringVar(&c.Builder, "builder", "local", "where builds run (`kind`): local, a sandboxed ferry build sub-process; ecs, one ECS task per build (--ecs-* flags)")
	fs.StringVar(&c.ECS.Cluster, "ecs-cluster", "", "ECS `cluster` name or ARN for build tasks (--builder ecs)")
	fs.StringVar(&c.ECS.TaskDefinition, "ecs-task-definition", "", "build task `definition` (family, family:revision or ARN)")
	fs.StringVar(&c.ECS.Container, "ecs-container", "build", "`name` of the container that runs ferry build")
	subnets := fs.String("ecs-subnets", "", "comma-separated `subnet ids` for build tasks")
	groups := fs.String("ecs-security-groups", "", "comma-separated `security group ids` for build tasks")
	fs.BoolVar(&c.ECS.AssignPublicIP, "ecs-assign-public-ip", false, "give build tasks a public IP (subnets without a NAT gateway)")
	fs.StringVar(&c.ECS.CapacityProvider, "ecs-capacity-provider", "", "capacity `provider` such as FARGATE_SPOT (default: launch type FARGATE)")
	fs.StringVar(&c.ECS.CPU, "ecs-cpu", "", "build task CPU `units` override, such as 2048 (default: the task definition's)")
	fs.StringVar(&c.ECS.Memory, "ecs-memory", "", "build task memory override in `MiB`, such as 4096 (default: the task definition's)")
	fs.StringVar(&c.ECS.BuildRoleARN, "ecs-build-role-arn", "", "`role` assumed per build with a session policy scoped to the project's storage prefix")
	fs.DurationVar(&c.ECS.SessionDuration, "ecs-session-duration", time.Hour, "lifetime of a build's storage session; keep it above the build timeout")
	fs.DurationVar(&c.ECS.StartTimeout, "ecs-start-timeout", 10*time.Minute, "how long a build task may take to start before the attempt is retried")
	fs.StringVar(&c.SecretKeyFile, "secret-key-file", "", "`file` with the key that encrypts env vars: 32 random bytes, raw or base64 (head -c 32 /dev/urandom | base64); without it env vars are off")
	fs.StringVar(&c.Signup, "signup", "closed", "who may create an account (`mode`): closed, nobody (the first account of an empty server signs up with a one-time link the log shows); invite, people with a one-time link that a signed-in user makes on the account page; open, anyone within the allow-lists below. Exposed to the internet, use closed or invite, or open with an allow-list")
	domains := fs.String("signup-email-domains", "", "comma-separated email `domains` that open sign-up accepts (example.com,corp.example); with only --signup-github-orgs, email sign-up is off")
	orgs := fs.String("signup-github-orgs", "", "comma-separated GitHub `organizations` whose active members may sign up with GitHub (checked with the user's token; needs --github-client-id)")
	fs.StringVar(&c.ProtectionKeyFile, "protection-key-file", "", "`file` with the key (32+ bytes; openssl rand -hex 32) that signs members' sign-ins to protected sites; give ferry proxy the same file (default: none, members cannot sign in)")
	fs.StringVar(&c.MetricsToken, "metrics-token", "", "bearer `token` that /metrics on --listen requires (prefer FERRY_METRICS_TOKEN_FILE); without it and --metrics-listen, /metrics is off")
	fs.StringVar(&c.MetricsListen, "metrics-listen", "", "`address` that serves /metrics without a token, for a private interface (for example 127.0.0.1:9090)")
	fs.IntVar(&c.Concurrency, "concurrency", 2, "`number` of builds run at once")
	buildFlagsDone := BuildFlags(fs, &c.Build)
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", webhook.DefaultMaxBodyBytes, "largest webhook body accepted, in `bytes` (GitHub's own cap is 25 MB)")
	fs.Int64Var(&c.WebhookPendingBytes, "webhook-pending-bytes", webhook.DefaultPendingBytes, "memory, in `bytes`, that all webhook bodies not yet verified may hold together; past it deliveries get 503 + Retry-After")
	gitRanges := fs.String("git-allow-ranges", "", "comma-separated non-public `CIDRs` that users' git URLs may reach, such as an internal git host's 10.1.2.0/24 (default: public addresses only)")
	fs.BoolVar(&c.GitAllowHTTP, "git-allow-http", false, "accept plain http:// git URLs besides https://")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long a stop waits for requests and running jobs")
	fs.DurationVar(&c.RetentionInterval, "retention-interval", time.Hour, "how often old deployments, blobs, caches and logs are collected by the retention policy (negative: never)")
	pol := retention.PolicyFlags(fs, "retention-", retention.Defaults)
	if err := flagenv.Parse(fs, args, getenv); err != nil {
		if err == flag.ErrHelp {
			return c, err
		}
		return c, ferry.Errorf(ferry.EINVALID, "%w", err)
	}
	if fs.NArg() > 0 {
		return c, ferry.Errorf(ferry.EINVALID, "unexpected arguments %q (ferry app takes flags only)", strings.Join(fs.Args(), " "))
	}
	c.ECS.Subnets, c.ECS.SecurityGroups = splitList(*subnets), splitList(*groups)
	c.SignupEmailDomains, c.SignupGitHubOrgs = splitList(*domains), splitList(*orgs)
	if err := buildFlagsDone(); err != nil {
		return c, err
	}
	ranges, err := netpolicy.ParsePrefixes(splitList(*gitRanges))
	if err != nil {
		return c, fmt.Errorf("--git-allow-ranges: %w", err)
	}
	c.GitAllowRanges = ranges
	c.Retention = pol.Over(retention.Defaults)
	if err := c.Retention.Validate(); err != nil {
		return c, err
	}
	key, err := privateKey(getenv)
	if err != nil {
		return c, err
	}
	c.GitHubPrivateKey = key
	if c.Concurrency < 1 {
		return c, ferry.Errorf(ferry.EINVALID, "--concurrency %d: run at least 1 build at once", c.Concurrency)
	}
	if c.MaxBodyBytes < 1024 {
		return c, ferry.Errorf(ferry.EINVALID, "--max-body-bytes %d is too small for any GitHub delivery (GitHub sends up to 25 MB)", c.MaxBodyBytes)
	}
	if _, err := c.withDefaults(); err != nil {
		return c, err
	}
	return c, nil
}

// GitHubKeyFlags adds --github-private-key-file and --github-private-key to fs, and returns the function that,
// after flagenv.Parse, gives the key from whichever was set (nil for neither). The value form exists because
// ECS and other secret stores inject secrets as environment variable values, not files.
//
// A command-line flag wins over the environment; two at the same level are an error. flagenv also fills
// --github-private-key from FERRY_GITHUB_PRIVATE_KEY_FILE (its _FILE rule) with the key that
// --github-private-key-file names through the same variable: that is one key, and it is read from the file.
func GitHubKeyFlags(fs *flag.FlagSet) func(getenv func(string) string) ([]byte, error) {
	file := fs.String("github-private-key-file", "", "`file` holding the GitHub App's private key (PEM)")
	value := fs.String("github-private-key", "", "the GitHub App's private key itself (`PEM`), for secret stores that inject values, such as ECS; instead of --github-private-key-file (prefer FERRY_GITHUB_PRIVATE_KEY)")
	return func(getenv func(string) string) ([]byte, error) {
		cmdline := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { cmdline[f.Name] = true })
		valueCmd, fileCmd := cmdline["github-private-key"], cmdline["github-private-key-file"]
		valueEnv := getenv("FERRY_GITHUB_PRIVATE_KEY") != ""
		fileEnv := getenv("FERRY_GITHUB_PRIVATE_KEY_FILE") != ""
		useValue := false
		switch {
		case valueCmd && fileCmd:
			return nil, ferry.Errorf(ferry.EINVALID, "pass either --github-private-key-file or --github-private-key, not both")
		case valueCmd:
			useValue = true
		case fileCmd:
		case valueEnv && fileEnv:
			return nil, ferry.Errorf(ferry.EINVALID, "set either FERRY_GITHUB_PRIVATE_KEY or FERRY_GITHUB_PRIVATE_KEY_FILE, not both")
		case valueEnv:
			useValue = true
		}
		if useValue {
			return pemValue(*value)
		}
		if *file == "" {
			return nil, nil
		}
		key, err := os.ReadFile(*file)
		if err != nil {
			return nil, ferry.Errorf(ferry.EINVALID, "read --github-private-key-file: %w", err)
		}
		return key, nil
	}
}

// pemValue checks a key given as a value. Some secret stores keep it on one line with its newlines written
// as \n; those are turned back into newlines.
func pemValue(v string) ([]byte, error) {
	v = strings.TrimSpace(v)
	if !strings.Contains(v, "\n") && strings.Contains(v, `\n`) {
		v = strings.ReplaceAll(v, `\n`, "\n")
	}
	if !strings.HasPrefix(v, "-----BEGIN ") {
		return nil, ferry.Errorf(ferry.EINVALID, "--github-private-key (FERRY_GITHUB_PRIVATE_KEY) does not hold a PEM key, which starts with -----BEGIN; to name a file, use --github-private-key-file")
	}
	return []byte(v + "\n"), nil
}

// splitList splits a comma-separated flag, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// String hides the secrets, so that a Config can be logged.
func (c Config) String() string {
	return fmt.Sprintf("listen=%s domain=%s builder=%s concurrency=%d github_app_id=%d github_api_url=%s github_url=%s public_url=%s signup=%s metrics_listen=%s metrics_token=%t",
		c.Listen, c.Domain, c.Builder, c.Concurrency, c.GitHubAppID, c.GitHubAPIURL, c.GitHubURL, c.PublicURL, c.Signup, c.MetricsListen, c.MetricsToken != "")
}

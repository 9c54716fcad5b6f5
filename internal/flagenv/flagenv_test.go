package flagenv

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// newSet is the kind of flag set every subcommand builds.
func newSet(out *bytes.Buffer) (*flag.FlagSet, *string, *string, *time.Duration, *StringList) {
	fs := NewFlagSet("publish", "ferry publish [flags] DIR", "Publishes a folder.", out)
	storage := fs.String("storage", "", "storage URL")
	secret := fs.String("webhook-secret", "", "the webhook secret")
	ttl := fs.Duration("alias-ttl", 2*time.Second, "alias TTL")
	var aliases StringList
	fs.Var(&aliases, "alias", "alias (repeatable)")
	return fs, storage, secret, ttl, &aliases
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestEnvName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"storage": "FERRY_STORAGE", "github-app-id": "FERRY_GITHUB_APP_ID"} {
		if got := EnvName(in); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseFillsFromEnvironment(t *testing.T) {
	t.Parallel()
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs, storage, secret, ttl, aliases := newSet(&bytes.Buffer{})
	err := Parse(fs, []string{"--alias", "pr-1", "dist"}, env(map[string]string{
		"FERRY_STORAGE":             "file:///srv",
		"FERRY_WEBHOOK_SECRET_FILE": secretFile,
		"FERRY_ALIAS_TTL":           "5s",
		"FERRY_ALIAS":               "production, git-main", // the command line gave --alias: env is ignored
	}))
	if err != nil {
		t.Fatal(err)
	}
	if *storage != "file:///srv" || *secret != "s3cret" || *ttl != 5*time.Second {
		t.Errorf("storage=%q secret=%q ttl=%v; want the environment's values, the file trimmed", *storage, *secret, *ttl)
	}
	if got := strings.Join(*aliases, ","); got != "pr-1" {
		t.Errorf("aliases = %q, want only the command line's pr-1", got)
	}
	if fs.Arg(0) != "dist" {
		t.Errorf("positional argument = %q, want dist", fs.Arg(0))
	}
}

func TestParseCommandLineWinsAndListsSplit(t *testing.T) {
	t.Parallel()
	fs, storage, _, _, aliases := newSet(&bytes.Buffer{})
	err := Parse(fs, []string{"--storage", "file:///cli"}, env(map[string]string{
		"FERRY_STORAGE": "file:///env",
		"FERRY_ALIAS":   "production, git-main,",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if *storage != "file:///cli" {
		t.Errorf("storage = %q, want the command line's", *storage)
	}
	if got := strings.Join(*aliases, "|"); got != "production|git-main" {
		t.Errorf("aliases from FERRY_ALIAS = %q, want production|git-main", got)
	}
}

func TestParseReportsBadEnvironment(t *testing.T) {
	t.Parallel()
	fs, _, _, _, _ := newSet(&bytes.Buffer{})
	err := Parse(fs, nil, env(map[string]string{
		"FERRY_ALIAS_TTL":           "soon",
		"FERRY_WEBHOOK_SECRET_FILE": filepath.Join(t.TempDir(), "missing"),
	}))
	if err == nil {
		t.Fatal("Parse accepted FERRY_ALIAS_TTL=soon and a missing secret file")
	}
	for _, want := range []string{"FERRY_ALIAS_TTL", "soon", "FERRY_WEBHOOK_SECRET_FILE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func TestHelpListsFlagsAndEnvironment(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	fs, _, _, _, _ := newSet(&out)
	err := Parse(fs, []string{"-h"}, env(nil))
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("Parse(-h) = %v, want flag.ErrHelp so that main exits 0", err)
	}
	for _, want := range []string{"Usage: ferry publish [flags] DIR", "FERRY_<FLAG_NAME>", "-storage", "-alias-ttl", "(default 2s)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("-h output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestFlagsAfterArguments: ferry publish DIR --project x works as ferry publish --project x DIR; "--" ends
// the flags.
func TestFlagsAfterArguments(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	fs, storage, _, _, aliases := newSet(&out)
	if err := Parse(fs, []string{"dist", "--storage", "file:///x", "--alias", "a", "more", "--", "--alias"}, env(nil)); err != nil {
		t.Fatal(err)
	}
	if *storage != "file:///x" || len(*aliases) != 1 || strings.Join(fs.Args(), " ") != "dist more --alias" {
		t.Fatalf("storage %q aliases %q args %q", *storage, *aliases, fs.Args())
	}
}

// TestParseErrorsAreOneLine: an unknown flag gets one line naming the nearest flag and -h, not the usage.
func TestParseErrorsAreOneLine(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--storag", "x"}, "unknown flag --storag (did you mean --storage?); run 'ferry publish -h' for its flags"},
		{[]string{"--webhook", "x"}, "did you mean --webhook-secret?"},
		{[]string{"--zzzzzz"}, "unknown flag --zzzzzz; run 'ferry publish -h'"},
		{[]string{"--alias-ttl", "soon"}, `invalid value "soon" for flag --alias-ttl`},
	} {
		var out bytes.Buffer
		fs, _, _, _, _ := newSet(&out)
		err := Parse(fs, c.args, env(nil))
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error %v, want one line with %q", c.args, err, c.want)
		}
		if out.Len() != 0 {
			t.Errorf("%q: printed %q; the caller prints the error once", c.args, out.String())
		}
	}
	var out bytes.Buffer
	fs, _, _, _, _ := newSet(&out)
	if err := Parse(fs, []string{"-h"}, env(nil)); !errors.Is(err, flag.ErrHelp) || !strings.Contains(out.String(), "-storage") {
		t.Errorf("-h: %v, usage %q", err, out.String())
	}
}

// TestUsageWithoutFlags: a command without flags says so instead of an empty "Flags:" list.
func TestUsageWithoutFlags(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	fs := NewFlagSet("action", "ferry action", "Inputs: a, b.", &out)
	if err := Parse(fs, []string{"-h"}, env(nil)); !errors.Is(err, flag.ErrHelp) {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "Inputs: a, b.") || !strings.Contains(out.String(), "It takes no flags.") || strings.Contains(out.String(), "Flags (") {
		t.Errorf("usage %q", out.String())
	}
}

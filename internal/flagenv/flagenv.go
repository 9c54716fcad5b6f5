// Package flagenv gives every subcommand the same configuration rules: flags from the standard flag package,
// each of which may also come from FERRY_<FLAG_NAME> or, for secrets, from a file named by FERRY_<FLAG_NAME>_FILE.
// An explicit command-line flag wins over the environment.
package flagenv

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// EnvName is the environment variable that may set flag name: --storage reads FERRY_STORAGE.
func EnvName(name string) string {
	return "FERRY_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// NewFlagSet returns a FlagSet whose -h output lists every flag with its default and its environment variable.
// usage is the one-line synopsis, for example "ferry publish [flags] DIR".
func NewFlagSet(name, usage, about string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: %s\n\n%s\n", usage, about)
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n == 0 { // ferry action: its inputs are in about; an empty "Flags:" list read as missing docs
			fmt.Fprintln(out, "\nIt takes no flags.")
			return
		}
		fmt.Fprintln(out, "\nFlags (each also read from FERRY_<FLAG_NAME>, secrets from FERRY_<FLAG_NAME>_FILE):")
		fs.PrintDefaults()
	}
	return fs
}

// Parse parses args, then fills every flag that was not given on the command line from the environment
// (getenv, normally os.Getenv). FERRY_<NAME>_FILE is read as a file whose trimmed contents are the value.
// It returns flag.ErrHelp for -h so that callers can exit 0.
func Parse(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if getenv == nil {
		getenv = os.Getenv
	}
	if err := parseInterleaved(fs, args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		env := EnvName(f.Name)
		value, ok := getenv(env), getenv(env) != ""
		if !ok {
			if file := getenv(env + "_FILE"); file != "" {
				b, err := os.ReadFile(file)
				if err != nil {
					errs = append(errs, fmt.Errorf("read %s_FILE: %w", env, err))
					return
				}
				value, ok = strings.TrimSpace(string(b)), true
			}
		}
		if !ok {
			return
		}
		if list, isList := f.Value.(*StringList); isList {
			for _, v := range strings.Split(value, ",") {
				if v = strings.TrimSpace(v); v != "" {
					*list = append(*list, v)
				}
			}
			return
		}
		if err := f.Value.Set(value); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", env, value, err))
		}
	})
	return errors.Join(errs...)
}

// parseInterleaved parses args with flags before and after the positional arguments (ferry publish DIR
// --project x), as people type them; "--" ends the flags. fs.Args() is then the positional arguments alone.
// A parse error is one line that says which flag and points to -h, instead of the flag package's error
// followed by the whole usage; -h still prints the usage.
func parseInterleaved(fs *flag.FlagSet, args []string) error {
	out, usage := fs.Output(), fs.Usage
	fs.SetOutput(io.Discard)
	fs.Usage = func() {} // the flag package calls it on every error too; -h is told apart by flag.ErrHelp
	defer func() { fs.SetOutput(out); fs.Usage = usage }()
	var pos []string
	rest, tail := args, []string(nil)
	for i, a := range args {
		if a == "--" {
			rest, tail = args[:i], args[i+1:]
			break
		}
	}
	for {
		err := fs.Parse(rest)
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(out)
			usage()
			return flag.ErrHelp
		}
		if err != nil {
			return parseError(fs, err)
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		pos, rest = append(pos, rest[0]), rest[1:]
	}
	pos = append(pos, tail...)
	return fs.Parse(append([]string{"--"}, pos...))
}

// parseError rewrites the flag package's error as one line: an unknown flag gets the nearest known one
// ("did you mean --listen?"), and every error says where the flags are explained.
func parseError(fs *flag.FlagSet, err error) error {
	msg := err.Error()
	hint := fmt.Sprintf("run 'ferry %s -h' for its flags", fs.Name())
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		if near := nearestFlag(fs, name); near != "" {
			return fmt.Errorf("unknown flag --%s (did you mean --%s?); %s", name, near, hint)
		}
		return fmt.Errorf("unknown flag --%s; %s", name, hint)
	}
	return fmt.Errorf("%s; %s", strings.Replace(msg, "for flag -", "for flag --", 1), hint)
}

// nearestFlag is the defined flag closest to name (a typo, or a prefix), "" when none is close.
func nearestFlag(fs *flag.FlagSet, name string) string {
	best, bestD := "", 3
	fs.VisitAll(func(f *flag.Flag) {
		d := editDistance(name, f.Name)
		if strings.HasPrefix(f.Name, name) && len(name) >= 3 {
			d = min(d, 1)
		}
		if d < bestD {
			best, bestD = f.Name, d
		}
	})
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// StringList is a repeatable string flag (--alias a --alias b). From the environment it takes a comma-separated list.
type StringList []string

// String joins the values with commas, as -h shows them.
func (l *StringList) String() string { return strings.Join(*l, ",") }

// Set appends one value.
func (l *StringList) Set(v string) error { *l = append(*l, v); return nil }

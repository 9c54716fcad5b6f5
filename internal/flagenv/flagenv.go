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
		fmt.Fprintf(out, "Usage: %s\n\n%s\n\nFlags (each also read from FERRY_<FLAG_NAME>, secrets from FERRY_<FLAG_NAME>_FILE):\n", usage, about)
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
	if err := fs.Parse(args); err != nil {
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

// StringList is a repeatable string flag (--alias a --alias b). From the environment it takes a comma-separated list.
type StringList []string

// String joins the values with commas, as -h shows them.
func (l *StringList) String() string { return strings.Join(*l, ",") }

// Set appends one value.
func (l *StringList) Set(v string) error { *l = append(*l, v); return nil }

package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	for _, arg := range []string{"version", "--version"} {
		var out, errOut bytes.Buffer
		if code := run([]string{arg}, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "ferry ") || !strings.Contains(out.String(), "go1.") {
			t.Errorf("ferry %s: exit %d, %q %q", arg, code, out.String(), errOut.String())
		}
	}
	version = "v9.9.9"
	defer func() { version = "" }()
	if v := versionString(); !strings.HasPrefix(v, "ferry v9.9.9") {
		t.Errorf("with -ldflags -X main.version: %q", v)
	}
}

package app

import (
	"io"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/ferry"
)

func TestBuildSandboxFlags(t *testing.T) {
	t.Parallel()
	env := map[string]string{"FERRY_DATABASE_URL": "postgres://x/y", "FERRY_STORAGE": "file:///tmp/x", "FERRY_WEBHOOK_SECRET": "s",
		"FERRY_BUILD_CLONE_ALLOW": "10.20.0.0/16"}
	cfg, err := parseFlags([]string{"--build-egress-allow", "10.1.2.0/24,10.9.0.5", "--build-egress-allow", "fd00:1::/64",
		"--build-max-disk-mib", "2048"}, io.Discard, envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.Build.EgressAllow, " "); got != "10.1.2.0/24 10.9.0.5 fd00:1::/64" {
		t.Errorf("EgressAllow = %q", got)
	}
	if got := strings.Join(cfg.Build.CloneAllow, " "); got != "10.20.0.0/16" {
		t.Errorf("CloneAllow = %q", got)
	}
	if cfg.Build.MaxDiskMiB != 2048 || cfg.Build.MaxTotalMemoryMiB != 6144 {
		t.Errorf("limits = %+v", cfg.Build)
	}
	_, err = parseFlags([]string{"--build-egress-allow", "intranet"}, io.Discard, envOf(env))
	if ferry.ErrorCode(err) != ferry.EINVALID || !strings.Contains(err.Error(), "--build-egress-allow") {
		t.Errorf("bad range: %v", err)
	}
}

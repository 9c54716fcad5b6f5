package buildcontract_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestAppDoesNotLinkTheRunner: the server's packages reach the runner only through this contract, so that
// `ferry app` never links the sandbox, the clone or the build steps of internal/build.
func TestAppDoesNotLinkTheRunner(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/ferryhq/ferry/app/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if p == "github.com/ferryhq/ferry/internal/build" {
			t.Fatalf("app/... depends on internal/build; import internal/buildcontract instead (go list -deps ./app/... | grep internal/build$)")
		}
	}
}

package proxy

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/storage"
)

// requireTool returns the path of the first of names on PATH; without one the test is skipped, or fails in CI.
func requireTool(t *testing.T, install string, names ...string) string {
	t.Helper()
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := names[0] + " is not installed: " + install
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// TestChromiumCustomDomain loads a verified custom domain over HTTPS in Chromium, with Pebble's root trusted
// through an NSS database (as a system administrator would add a private CA), and the name mapped to the
// proxy's loopback port. An untrusted certificate would stop the navigation with ERR_CERT_AUTHORITY_INVALID.
func TestChromiumCustomDomain(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: runs Pebble and Chromium")
	}
	t.Parallel()
	exe := requireTool(t, "apt-get install chromium", "chromium", "chromium-browser")
	certutil := requireTool(t, "apt-get install libnss3-tools", "certutil")
	s := newACMESetup(t, 0)
	st, _ := storage.NewFile(t.TempDir())
	e := startTLS(t, st, s.plain, s.secure, s.opts(true, true))
	attach(t, e.store, "shop.chromium.test", "shop", site.DomainVerified)

	home := t.TempDir()
	db := filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(db, 0o700); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(home, "pebble-root.pem")
	if err := os.WriteFile(root, s.pebble.RootPEM(t), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-N", "-d", "sql:" + db, "--empty-password"},
		{"-A", "-d", "sql:" + db, "-t", "C,,", "-n", "pebble", "-i", root},
	} {
		if out, err := exec.Command(certutil, args...).CombinedOutput(); err != nil {
			t.Fatalf("certutil %v: %v\n%s", args, err, out)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	actx, acancel := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(filepath.Join(home, "profile")),
		chromedp.Env("HOME="+home),
		chromedp.Flag("host-resolver-rules", "MAP shop.chromium.test "+e.secure),
		chromedp.Flag("disable-background-networking", true))
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	if _, err := chromedp.Run(bctx, chromedp.Navigate("https://shop.chromium.test/")); err != nil {
		t.Fatalf("Chromium could not load https://shop.chromium.test/: %v\nproxy logs:\n%s", err, e.logs.String())
	}
	text, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("h1")))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(text) != "shop" {
		t.Fatalf("page heading %q, want shop", text)
	}
	// The same page from a host whose certificate Chromium does not trust is refused: the test can fail.
	nctx, ncancel := chromedp.NewContext(bctx) // a new tab of the same browser
	defer ncancel()
	if _, err := chromedp.Run(nctx, chromedp.Navigate("https://unverified.chromium.test/")); err == nil || !strings.Contains(err.Error(), "ERR_") {
		t.Fatalf("navigating to a host without a certificate: %v, want a network error", err)
	}
}

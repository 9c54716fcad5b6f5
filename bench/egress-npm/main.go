// Command egress-npm measures what the build sandbox's egress path costs a real `npm install`: the same
// install from the registry, with an empty npm cache each time, run directly and through the path a sandboxed
// build takes (npm → TCP forwarder → unix socket → internal/egress proxy with the address policy → registry),
// alternating, in one run. It prints each time, the medians and their ratio.
//
//	go run ./bench/egress-npm                    # bench/build-cache's package.json and lockfile, 5 rounds
//	go run ./bench/egress-npm -rounds 9 -dir DIR  # another fixture (package.json, optional package-lock.json)
//
// Where the registry resolves to a non-public address (a mirror, a test network), its addresses are allowed,
// as an operator would with --egress-allow; nothing else is.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ferryhq/ferry/internal/egress"
	"github.com/ferryhq/ferry/internal/netpolicy"
)

func main() {
	rounds := flag.Int("rounds", 5, "install rounds; each runs once direct and once through the proxy")
	dir := flag.String("dir", "bench/build-cache", "fixture folder with package.json (and package-lock.json for npm ci)")
	flag.Parse()

	policy := netpolicy.Policy{Allow: registryAllow()}
	work, err := os.MkdirTemp("", "ferry-egress-bench-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)

	// The sandbox's path, on the host: proxy on a unix socket, forwarder on a loopback TCP port.
	sock := filepath.Join(work, "egress.sock")
	uln, err := net.Listen("unix", sock)
	if err != nil {
		log.Fatal(err)
	}
	px := egress.New(egress.Config{Policy: policy})
	go px.Serve(uln)
	defer px.Close()
	tln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go egress.Forward(tln, sock)
	proxyURL := "http://" + tln.Addr().String()

	install := "install"
	if _, err := os.Stat(filepath.Join(*dir, "package-lock.json")); err == nil {
		install = "ci"
	}
	var direct, proxied []time.Duration
	for i := 0; i < *rounds; i++ {
		modes := []bool{false, true}
		if i%2 == 1 {
			modes = []bool{true, false} // alternate the order, so that neither mode always runs second
		}
		for _, viaProxy := range modes {
			d, err := run(work, *dir, install, viaProxy, proxyURL)
			if err != nil {
				log.Fatalf("round %d (proxy %v): %v", i, viaProxy, err)
			}
			name := "direct "
			if viaProxy {
				name = "proxied"
				proxied = append(proxied, d)
			} else {
				direct = append(direct, d)
			}
			fmt.Printf("round %d %s npm %s: %.2fs\n", i+1, name, install, d.Seconds())
		}
	}
	md, mp := median(direct), median(proxied)
	fmt.Printf("median direct %.2fs, through the egress proxy %.2fs: ratio %.3f (refused: %d)\n",
		md.Seconds(), mp.Seconds(), mp.Seconds()/md.Seconds(), px.Refused())
}

// run installs the fixture in a fresh folder with a fresh npm cache.
func run(work, fixture, install string, viaProxy bool, proxyURL string) (time.Duration, error) {
	d, err := os.MkdirTemp(work, "round-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(d)
	for _, f := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join(fixture, f))
		if err == nil {
			err = os.WriteFile(filepath.Join(d, f), b, 0o644)
		}
		if err != nil && !os.IsNotExist(err) {
			return 0, err
		}
	}
	cmd := exec.Command("npm", install, "--no-audit", "--no-fund", "--ignore-scripts", "--cache", filepath.Join(d, ".npm-cache"), "--prefer-online")
	cmd.Dir = d
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + d, "npm_config_update_notifier=false"}
	if viaProxy {
		cmd.Env = append(cmd.Env, "HTTPS_PROXY="+proxyURL, "HTTP_PROXY="+proxyURL, "npm_config_proxy="+proxyURL,
			"npm_config_https_proxy="+proxyURL, "NO_PROXY=")
	}
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("%v: %s", err, out)
	}
	return time.Since(start), nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// registryAllow lists the registry's addresses that the policy would refuse.
func registryAllow() []netip.Prefix {
	out, err := exec.Command("npm", "config", "get", "registry").Output()
	if err != nil {
		return nil
	}
	u, err := url.Parse(strings.TrimSpace(string(out)))
	if err != nil {
		return nil
	}
	ps, err := netpolicy.HostPrefixes(context.Background(), nil, u.Hostname())
	if err != nil {
		log.Fatal(err)
	}
	var allow []netip.Prefix
	for _, p := range ps {
		if netpolicy.Classify(p.Addr()) != "" {
			allow = append(allow, p)
		}
	}
	return allow
}

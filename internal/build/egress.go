package build

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/ferryhq/ferry/internal/egress"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/netpolicy"
)

// Inside the sandbox, the egress proxy's socket and the forwarder that serves it on loopback live here.
const (
	insideEgressDir  = "/run/ferry"
	insideEgressSock = insideEgressDir + "/egress.sock"
	insideForwarder  = insideEgressDir + "/ferry"
	// insideProxyAddr is where build tools find the proxy, in the build's own network namespace (nothing of
	// the host's loopback is there).
	insideProxyAddr = "127.0.0.1:3128"
)

// egressProxy is a build's way out: a proxy on a unix socket that only the build's sandbox can reach.
type egressProxy struct {
	proxy     *egress.Proxy
	sock      string // host path of the socket
	forwarder string // host path of the binary that runs the forwarder inside
	extra     string // a folder of its own for the socket, removed at Close, or ""
}

// startEgress serves the egress proxy on dir/egress.sock, owned by the build's user, and finds a copy of
// this binary that the build's user can execute to run the forwarder.
func startEgress(dir string, policy netpolicy.Policy, uid int, dropUID bool, log *slog.Logger) (*egressProxy, error) {
	sock := filepath.Join(dir, "egress.sock")
	var extra string // a short folder of its own, when dir is too long a path for a socket (108 bytes)
	if len(sock) > 100 {
		d, err := os.MkdirTemp("/tmp", "ferry-egress-")
		if err != nil {
			return nil, ferry.Errorf(ferry.EINTERNAL, "start the build's egress proxy: %w", err)
		}
		if err := os.Chmod(d, 0o711); err != nil {
			os.RemoveAll(d)
			return nil, ferry.Errorf(ferry.EINTERNAL, "start the build's egress proxy: %w", err)
		}
		extra, sock = d, filepath.Join(d, "egress.sock")
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		if extra != "" {
			os.RemoveAll(extra)
		}
		return nil, ferry.Errorf(ferry.EINTERNAL, "start the build's egress proxy: %w", err)
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		ln.Close()
		return nil, ferry.Errorf(ferry.EINTERNAL, "start the build's egress proxy: %w", err)
	}
	if dropUID {
		if err := os.Lchown(sock, uid, uid); err != nil {
			ln.Close()
			return nil, ferry.Errorf(ferry.EINTERNAL, "start the build's egress proxy: %w", err)
		}
	}
	fw, err := forwarderBinary(dir)
	if err != nil {
		ln.Close()
		return nil, err
	}
	p := egress.New(egress.Config{Policy: policy, Log: log})
	go p.Serve(ln) //nolint:errcheck // ends with Close
	return &egressProxy{proxy: p, sock: sock, forwarder: fw, extra: extra}, nil
}

func (e *egressProxy) Close() error {
	if e == nil {
		return nil
	}
	err := e.proxy.Close()
	if e.extra != "" {
		os.RemoveAll(e.extra)
	}
	return err
}

// forwarderBinary returns this executable when every user can run it (an installed ferry), or a copy in dir
// (a test binary in a private build folder). The forwarder is this binary run with egress.ForwardArg.
func forwarderBinary(dir string) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", ferry.Errorf(ferry.EINTERNAL, "find the ferry binary for the sandbox's network forwarder: %w", err)
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return "", ferry.Errorf(ferry.EINTERNAL, "find the ferry binary for the sandbox's network forwarder: %w", err)
	}
	if everyoneCanRun(exe) {
		return exe, nil
	}
	dst := filepath.Join(dir, "ferry-forwarder")
	if err := copyFile(exe, dst, 0o755); err != nil {
		return "", ferry.Errorf(ferry.EINTERNAL, "copy the ferry binary for the sandbox's network forwarder: %w", err)
	}
	return dst, nil
}

// everyoneCanRun reports whether any user can execute path: o+rx on the file, o+x on every folder above.
func everyoneCanRun(path string) bool {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o005 != 0o005 {
		return false
	}
	for d := filepath.Dir(path); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == "/" || d == filepath.Dir(d) {
			return true
		}
	}
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// proxyEnv points every tool a build uses at the egress proxy. NO_PROXY is empty: nothing bypasses it, and a
// tool that ignored these variables would find no route out of the namespace anyway.
func proxyEnv() map[string]string {
	u := "http://" + insideProxyAddr
	return map[string]string{
		"HTTP_PROXY": u, "HTTPS_PROXY": u, "http_proxy": u, "https_proxy": u, "ALL_PROXY": u, "all_proxy": u,
		"NO_PROXY": "", "no_proxy": "",
		// npm and pnpm read their own config names first; yarn 1 reads npm's, yarn 2+ its own.
		"npm_config_proxy": u, "npm_config_https_proxy": u, "npm_config_noproxy": "",
		"YARN_HTTP_PROXY": u, "YARN_HTTPS_PROXY": u,
		// Libraries that use global-agent (some postinstall downloaders: electron, puppeteer).
		"GLOBAL_AGENT_HTTP_PROXY": u, "GLOBAL_AGENT_HTTPS_PROXY": u,
	}
}

// cloneProxy serves the egress proxy on host loopback for git, which cannot use a unix socket as its proxy.
// Any host user can connect to loopback, so it asks for a random password that only the git processes get.
type cloneProxy struct {
	proxy *egress.Proxy
	url   string // http://ferry:TOKEN@127.0.0.1:PORT, for git's http.proxy
	token string
}

func startCloneProxy(policy netpolicy.Policy, log *slog.Logger) (*cloneProxy, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return nil, ferry.Errorf(ferry.EINTERNAL, "clone proxy token: %w", err)
	}
	token := hex.EncodeToString(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, ferry.Errorf(ferry.EINTERNAL, "start the clone's egress proxy: %w", err)
	}
	p := egress.New(egress.Config{Policy: policy, Token: token, Log: log})
	go p.Serve(ln) //nolint:errcheck // ends with Close
	return &cloneProxy{proxy: p, url: fmt.Sprintf("http://ferry:%s@%s", token, ln.Addr()), token: token}, nil
}

func (c *cloneProxy) Close() error {
	if c == nil {
		return nil
	}
	return c.proxy.Close()
}

// clonePolicy is the build's policy plus the ranges only the clone may reach.
func clonePolicy(p netpolicy.Policy, extra []netip.Prefix) netpolicy.Policy {
	p.Allow = append(append([]netip.Prefix(nil), p.Allow...), extra...)
	return p
}

// describeEgress is the network part of the build's one line about its limits.
func describeEgress(p netpolicy.Policy) string {
	var allowed []string
	if p.AllowLoopback {
		allowed = append(allowed, "loopback")
	}
	for _, pre := range p.Allow {
		allowed = append(allowed, pre.String())
	}
	if len(allowed) == 0 {
		return "network: public addresses only, through the egress proxy"
	}
	return "network: public addresses and " + strings.Join(allowed, ", ") + ", through the egress proxy"
}

package build

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/pgcluster"
)

// probeJS is the hostile part of the build: for every host service it tries a direct connection and a
// CONNECT through the egress proxy, then dumps the namespace's socket tables and binds a port.
const probeJS = `
const net = require("net"), fs = require("fs");
const probe = JSON.parse(process.env.PROBE), targets = probe.targets;
function direct(host, port) {
  return new Promise((res) => {
    const s = net.connect({ host, port });
    const t = setTimeout(() => { s.destroy(); res("TIMEOUT"); }, 5000);
    s.on("connect", () => {
      s.once("data", (d) => { clearTimeout(t); s.destroy(); res("CONNECTED " + d.toString().trim()); });
      setTimeout(() => { clearTimeout(t); s.destroy(); res("CONNECTED"); }, 1000);
    });
    s.on("error", (e) => { clearTimeout(t); res("ERROR " + e.code); });
  });
}
function viaProxy(host, port) {
  return new Promise((res) => {
    const s = net.connect({ host: "127.0.0.1", port: 3128 });
    const t = setTimeout(() => { s.destroy(); res("TIMEOUT"); }, 20000);
    s.on("connect", () => s.write("CONNECT " + host + ":" + port + " HTTP/1.1\r\nHost: " + host + ":" + port + "\r\n\r\n"));
    s.once("data", (d) => { clearTimeout(t); s.destroy(); res(d.toString().split("\r\n")[0]); });
    s.on("error", (e) => { clearTimeout(t); res("ERROR " + e.code); });
  });
}
(async () => {
  for (const [name, host, port] of targets) {
    console.log("PROBE " + name + " direct " + await direct(host, port));
    console.log("PROBE " + name + " proxy " + await viaProxy(host, port));
  }
  for (const f of ["/proc/net/tcp", "/proc/net/tcp6", "/proc/net/unix"]) {
    let body = "";
    try { body = fs.readFileSync(f, "utf8"); } catch (e) { body = "unreadable " + e.code; }
    for (const l of body.split("\n")) if (l.trim()) console.log("NET " + f + " " + l.trim());
  }
  const port = probe.bind;
  const srv = net.createServer(() => {});
  srv.on("error", (e) => console.log("BIND ERROR " + e.code));
  srv.listen(port, "0.0.0.0", () => {
    console.log("BOUND " + port);
    setTimeout(() => { srv.close(); fs.mkdirSync("dist", { recursive: true }); fs.writeFileSync("dist/index.html", "ok"); }, 3000);
  });
})();
`

// listenBanner serves a canary line on addr, as the App's HTTP port would answer.
func listenBanner(t *testing.T, network, addr, banner string) net.Listener {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, banner)
			c.Close()
		}
	}()
	return ln
}

// TestSandboxNetwork performs the attack of issue 11 item 1 against a real build: a hostile package.json whose
// install pulls a real package from the registry (through the egress proxy) and whose build then tries the
// host's loopback services, reads the socket tables and binds a port.
func TestSandboxNetwork(t *testing.T) {
	requireBwrap(t)
	requireTool(t, "npm", "install nodejs and npm")
	if testing.Short() {
		t.Skip("slow: starts PostgreSQL and installs from the npm registry")
	}
	app := listenBanner(t, "tcp", "127.0.0.1:0", "canary-app-port-1c9e")
	other := listenBanner(t, "tcp", "127.0.0.2:0", "canary-other-loopback-77b0")
	sockDir, err := os.MkdirTemp("", "ferry-nettest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	hostSock := filepath.Join(sockDir, "canary-host.sock")
	listenBanner(t, "unix", hostSock, "canary-unix-3a1f")

	// The test's PostgreSQL, listening on TCP on loopback as the attacked host's did.
	pgAddr := fmt.Sprintf("127.0.%d.%d", 10+rand.IntN(200), 1+rand.IntN(250))
	binDir, err := pgcluster.FindBinDir()
	if err != nil {
		t.Skip(err)
	}
	pgDir, err := os.MkdirTemp("", "ferry-nettest-pg-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(pgDir, 0o755)
	t.Cleanup(func() { os.RemoveAll(pgDir) })
	pg, err := pgcluster.Start(context.Background(), pgcluster.Options{Dir: filepath.Join(pgDir, "pg"), BinDir: binDir, Ephemeral: true,
		Settings: map[string]string{"listen_addresses": "'" + pgAddr + "'"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Stop(context.Background()) })
	if c, err := net.Dial("tcp", pgAddr+":5432"); err != nil {
		t.Fatalf("the test's PostgreSQL does not listen on %s:5432: %v", pgAddr, err)
	} else {
		c.Close()
	}

	bindLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bindPort := bindLn.Addr().(*net.TCPAddr).Port
	bindLn.Close() // free on the host: the build binds it in its namespace, the host must not see it

	port := func(ln net.Listener) int { return ln.Addr().(*net.TCPAddr).Port }
	targets := [][]any{
		{"app", "127.0.0.1", port(app)},
		{"other-loopback", "127.0.0.2", port(other)},
		{"postgres", pgAddr, 5432},
		{"localhost-name", "localhost", port(app)},
	}
	// One JSON value: project env values are masked in logs, and the port must show in the probe's output.
	tj, _ := json.Marshal(map[string]any{"targets": targets, "bind": bindPort})

	e := newTestEnv(t, "")
	r := e.repo(map[string]string{
		"package.json": `{"name":"hostile","private":true,"dependencies":{"is-number":"7.0.0"},"scripts":{"build":"node probe.js"}}`,
		"probe.js":     probeJS,
	})
	p := e.params(r)
	p.Env = map[string]string{"PROBE": string(tj)}

	// While the build holds its port, the host's listener list must not show it, and connecting from the
	// host must be refused.
	hostSawBind := make(chan string, 1)
	buildDone := make(chan struct{})
	go func() {
		for {
			select {
			case <-buildDone:
				hostSawBind <- "the build ended before it bound its port"
				return
			default:
			}
			if strings.Contains(e.logs.String(), "BOUND "+strconv.Itoa(bindPort)) {
				seen := ""
				if hostListens(bindPort) {
					seen = "the host's /proc/net/tcp lists the build's port"
				}
				if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(bindPort), time.Second); err == nil {
					c.Close()
					seen += "; the host connected to the build's port"
				}
				hostSawBind <- seen
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()

	_, err = Run(context.Background(), p)
	close(buildDone)
	logs := e.logs.String()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, logs)
	}
	if !strings.Contains(logs, "added 1 package") {
		t.Errorf("npm install did not install is-number through the egress proxy:\n%s", logs)
	}
	for _, tg := range targets {
		name := tg[0].(string)
		d, px := probeResult(logs, name, "direct"), probeResult(logs, name, "proxy")
		// Inside the namespace nothing listens there: refused at once, never a timeout.
		if d != "ERROR ECONNREFUSED" && !(name == "localhost-name" && strings.HasPrefix(d, "ERROR E")) {
			t.Errorf("%s: direct connection from the build = %q, want ERROR ECONNREFUSED", name, d)
		}
		if px != "HTTP/1.1 403 Forbidden" {
			t.Errorf("%s: CONNECT through the egress proxy = %q, want HTTP/1.1 403 Forbidden", name, px)
		}
	}
	for _, canary := range []string{"canary-app-port-1c9e", "canary-other-loopback-77b0", "canary-unix-3a1f"} {
		if strings.Contains(logs, canary) {
			t.Errorf("the build reached a host service (%s):\n%s", canary, logs)
		}
	}
	// The socket tables are the namespace's: none of the host's listeners, no host unix socket path.
	var netLines []string
	for _, l := range strings.Split(logs, "\n") {
		if i := strings.Index(l, "NET /proc/net/"); i >= 0 {
			netLines = append(netLines, l[i:])
		}
	}
	if len(netLines) < 3 {
		t.Fatalf("the probe did not read /proc/net:\n%s", logs)
	}
	for _, hp := range []int{port(app), port(other), 5432} {
		hex := fmt.Sprintf(":%04X ", hp)
		for _, l := range netLines {
			if strings.Contains(l, hex) {
				t.Errorf("the build sees a host socket on port %d: %s", hp, l)
			}
		}
	}
	for _, l := range netLines {
		if strings.Contains(l, sockDir) || strings.Contains(l, ".s.PGSQL") {
			t.Errorf("the build sees a host unix socket: %s", l)
		}
	}
	if !strings.Contains(logs, "BOUND "+strconv.Itoa(bindPort)) {
		t.Errorf("the build could not bind a port inside its own namespace:\n%s", logs)
	}
	if seen := <-hostSawBind; seen != "" {
		t.Errorf("binding inside the sandbox reached the host: %s", seen)
	}
	if !strings.Contains(logs, "egress refused") {
		t.Errorf("the egress proxy did not log its refusals:\n%s", logs)
	}
}

// probeResult finds "PROBE name how RESULT" in the logs.
func probeResult(logs, name, how string) string {
	prefix := "PROBE " + name + " " + how + " "
	for _, l := range strings.Split(logs, "\n") {
		if i := strings.Index(l, prefix); i >= 0 {
			v := l[i+len(prefix):]
			// The text handler may quote the message; keep what the probe printed.
			if j := strings.IndexAny(v, "\"\\"); j >= 0 {
				v = v[:j]
			}
			return strings.TrimSpace(v)
		}
	}
	return "(no result)"
}

// hostListens reports whether the host's own /proc/net/tcp or tcp6 lists a listening socket on port.
func hostListens(port int) bool {
	hex := fmt.Sprintf(":%04X ", port)
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			fields := strings.Fields(l)
			if len(fields) > 3 && strings.HasSuffix(fields[1], hex[:len(hex)-1]) && fields[3] == "0A" {
				return true
			}
		}
	}
	return false
}

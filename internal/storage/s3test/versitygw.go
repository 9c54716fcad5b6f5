package s3test

import (
	"fmt"
	"go/build"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// VersityGWInstall is the command that installs the versitygw the tests expect.
const VersityGWInstall = "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"

// StartVersityGW runs versitygw as a separate process on a free loopback port, with a temporary folder as its
// posix backend and random root keys, creates a bucket, and stops the process at test cleanup. Requests go
// through real SigV4 and real checksum checks. Without the binary the test is skipped, or fails when CI is set.
func StartVersityGW(t testing.TB) *Server {
	t.Helper()
	bin := versityGWPath()
	if bin == "" {
		msg := "versitygw not found on PATH or in GOPATH/bin; install it with: " + VersityGWInstall
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatalf("versitygw root: %v", err)
	}
	s := &Server{
		AccessKey: "AK" + strings.ToUpper(randomHex(t, 9)),
		SecretKey: randomHex(t, 20),
		Bucket:    "ferry-" + randomHex(t, 4),
		Region:    "us-east-1",
	}
	var p *proc
	s.start = func(t testing.TB) {
		t.Helper()
		// After the first start the address is kept, since clients already hold it. Before it, a port picked by
		// freeAddr can be taken by a parallel test before versitygw binds it, so each try picks another.
		restart := s.Endpoint != ""
		addr := strings.TrimPrefix(s.Endpoint, "http://")
		var err error
		for try := 0; try < 5; try++ {
			if !restart {
				addr = freeAddr(t)
			} else if try > 0 {
				time.Sleep(200 * time.Millisecond)
			}
			p, err = startVersityGW(bin, addr, root, s, filepath.Join(dir, "versitygw.log"))
			if err == nil {
				s.Endpoint = "http://" + addr
				return
			}
		}
		t.Fatalf("start versitygw: %v", err)
	}
	s.stop = func() { p.stop() }
	s.Start(t)
	t.Cleanup(s.Stop)
	s.createBucket(t)
	return s
}

// versityGWPath finds the binary on PATH or where `go install` puts it.
func versityGWPath() string {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	for _, gopath := range filepath.SplitList(build.Default.GOPATH) {
		p := filepath.Join(gopath, "bin", "versitygw")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	return ""
}

// startVersityGW starts one process and waits until its health endpoint answers.
func startVersityGW(bin, addr, root string, s *Server, logPath string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	defer logf.Close() // the child holds its own descriptor
	cmd := exec.Command(bin, "--port", addr, "--region", s.Region, "--health", "/health", "--quiet", "posix", root)
	// Keys go through the environment, not argv, so they do not show in ps; nothing else is inherited, so a
	// developer's VGW_* settings cannot change the server under test.
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + filepath.Dir(root),
		"ROOT_ACCESS_KEY_ID=" + s.AccessKey,
		"ROOT_SECRET_ACCESS_KEY=" + s.SecretKey,
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return nil, fmt.Errorf("versitygw exited (%v); log:\n%s", err, tail(logPath))
		default:
		}
		resp, err := client.Get("http://" + addr + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return &proc{cmd: cmd, exited: exited}, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	(&proc{cmd: cmd, exited: exited}).stop()
	return nil, fmt.Errorf("versitygw did not answer on %s within 15s; log:\n%s", addr, tail(logPath))
}

// proc is a started child process and the channel that reports its exit.
type proc struct {
	cmd    *exec.Cmd
	exited chan error
}

// stop asks the process to exit, and kills it if it has not within a few seconds.
func (p *proc) stop() {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return
	case <-time.After(3 * time.Second):
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// tail returns the end of a log file, for failure messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

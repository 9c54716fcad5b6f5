package egress

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

// ForwardArg, as the first argument of any binary that links this package (ferry, or a test binary),
// runs Forward instead of the program: `BINARY ForwardArg SOCKET LISTEN -- COMMAND...`. The sandbox starts
// this before the build command, because inside the build's network namespace only lo exists and the tools
// want a TCP proxy address, not a unix socket.
const ForwardArg = "__ferry-egress-forward"

func init() {
	if len(os.Args) > 1 && os.Args[1] == ForwardArg {
		os.Exit(forwardMain(os.Args[2:]))
	}
}

// forwardMain listens, starts the command with this process's environment, and exits with its status.
func forwardMain(args []string) int {
	if len(args) < 4 || args[2] != "--" {
		fmt.Fprintln(os.Stderr, "ferry egress forwarder: usage: "+ForwardArg+" SOCKET LISTEN -- COMMAND...")
		return 127
	}
	ln, err := net.Listen("tcp", args[1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferry egress forwarder: listen on %s: %v\n", args[1], err)
		return 127
	}
	go Forward(ln, args[0])
	cmd := exec.Command(args[3], args[4:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "ferry egress forwarder: start %s: %v\n", args[3], err)
		return 127
	}
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	fmt.Fprintf(os.Stderr, "ferry egress forwarder: %v\n", err)
	return 127
}

// Forward accepts TCP connections on ln and joins each one to a new connection to the unix socket at sock,
// until ln is closed.
func Forward(ln net.Listener, sock string) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			up, err := net.Dial("unix", sock)
			if err != nil {
				// The proxy is gone (the build is ending); the client sees the connection close.
				return
			}
			defer up.Close()
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(up, c); _ = up.(*net.UnixConn).CloseWrite(); done <- struct{}{} }()
			go func() { _, _ = io.Copy(c, up); _ = c.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
			<-done
			<-done
		}()
	}
}

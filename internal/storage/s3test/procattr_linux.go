package s3test

import "syscall"

// childProcAttr kills a server when the test binary dies without running its cleanups (a panic or a timeout).
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

//go:build !linux

package s3test

import "syscall"

// childProcAttr has nothing to set where parent-death signals do not exist.
func childProcAttr() *syscall.SysProcAttr { return nil }

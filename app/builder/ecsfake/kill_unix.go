//go:build unix

package ecsfake

import (
	"os/exec"
	"syscall"
)

// isolate puts a task in its own process group, so that stopping it stops what it started (npm, node) too,
// as stopping a container does.
func isolate(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
}

// kill stops a task's process and, when it leads its own group, the group.
func kill(cmd *exec.Cmd) {
	if cmd.SysProcAttr != nil && cmd.SysProcAttr.Setpgid {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		return
	}
	_ = cmd.Process.Kill()
}

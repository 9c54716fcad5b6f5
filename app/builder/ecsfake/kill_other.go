//go:build !unix

package ecsfake

import "os/exec"

func isolate(cmd *exec.Cmd) {}

func kill(cmd *exec.Cmd) { _ = cmd.Process.Kill() }

//go:build unix

package site

import "syscall"

// noFollow makes opening a file fail if its last component was swapped for a symlink after the walk checked it.
const noFollow = syscall.O_NOFOLLOW

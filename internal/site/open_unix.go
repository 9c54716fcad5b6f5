//go:build unix

package site

import (
	"io/fs"
	"syscall"
)

// noFollow makes opening a file fail if its last component was swapped for a symlink after the walk checked it.
const noFollow = syscall.O_NOFOLLOW

// fileID is what the hash cache compares to trust a remembered hash: device, inode, size, and the
// modification and change times in nanoseconds. ok is false where the platform does not report them.
func fileID(fi fs.FileInfo) (id fileStamp, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileStamp{}, false
	}
	return fileStamp{
		Dev: uint64(st.Dev), Ino: uint64(st.Ino), Size: fi.Size(),
		MTime: fi.ModTime().UnixNano(), CTime: st.Ctim.Sec*1e9 + st.Ctim.Nsec,
	}, true
}

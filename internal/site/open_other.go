//go:build !unix

package site

import "io/fs"

// noFollow is not available here; the walk's symlink checks still apply.
const noFollow = 0

// fileID reports no identity here, so the hash cache never trusts a remembered hash.
func fileID(fs.FileInfo) (fileStamp, bool) { return fileStamp{}, false }

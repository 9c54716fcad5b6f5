//go:build !unix

package site

// noFollow is not available here; the walk's symlink checks still apply.
const noFollow = 0

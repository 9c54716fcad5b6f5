package storage

import (
	"path"
	"strings"

	"github.com/ferryhq/ferry/internal/ferry"
)

// checkKey refuses keys that are not clean relative paths. Every backend applies the same rule, so a key that
// works on a laptop's file:// store also works on S3, and no key can climb out of a root or an S3 prefix.
func checkKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.Contains(key, "\\") || strings.ContainsRune(key, 0) || path.Clean(key) != key || key == "." || key == ".." || strings.HasPrefix(key, "../") {
		return ferry.Errorf(ferry.EINVALID, "storage key %q is not a clean relative path", key)
	}
	return nil
}

// checkPrefix refuses list prefixes whose folder part is not a clean relative path. The last segment may be
// partial ("projects/web/blobs/ab" lists blobs starting with "ab").
func checkPrefix(prefix string) error {
	if strings.HasPrefix(prefix, "/") || strings.ContainsRune(prefix, 0) || strings.Contains(prefix, "\\") {
		return ferry.Errorf(ferry.EINVALID, "list prefix %q is not a clean relative path", prefix)
	}
	if i := strings.LastIndex(prefix, "/"); i > 0 {
		if err := checkKey(prefix[:i]); err != nil {
			return ferry.Errorf(ferry.EINVALID, "list prefix %q is not a clean relative path", prefix)
		}
	}
	return nil
}

// Package storage is Ferry's object store: one small interface with a local-folder backend and an S3 backend,
// chosen from the one --storage URL (docs/architecture.md, "Storage"). Keys are slash-separated paths under the root,
// such as "projects/web/blobs/<sha256>". Every backend returns *ferry.Error with ENOTFOUND for a missing key and
// EUNAVAILABLE when the backend cannot be reached, so callers can tell "absent" from "down".
package storage

import (
	"context"
	"io"
	"time"
)

// Storage is what publishers, the proxy and the app need from an object store, and nothing more.
type Storage interface {
	// Get opens the object at key. The caller closes the reader.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Stat reports an object's size and modification time without reading it.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// Put writes body (size bytes) at key, replacing any object there; readers see the old or the new object,
	// never a partial one. A non-empty opts.SHA256 makes the backend verify the body against it.
	Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts PutOptions) error
	// Delete removes key. Deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List returns every key that starts with prefix, in lexical order, each with its size and modification
	// time (the garbage collector's grace periods are measured on it).
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
	// DeleteMany removes keys in as few requests as the backend allows (S3: DeleteObjects, 1,000 keys a
	// request), so that collecting garbage costs requests per thousand objects, not per object. Missing keys
	// are not an error. On failure some keys may be gone and others not; deleting again is safe.
	DeleteMany(ctx context.Context, keys []string) error
}

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// PutOptions carries what a backend may store or check alongside the body.
type PutOptions struct {
	// SHA256 is the lowercase hex SHA-256 of the body. S3 verifies it (x-amz-checksum-sha256); the file backend
	// verifies it while writing.
	SHA256 string
	// ContentType is stored as the object's Content-Type when the backend keeps one.
	ContentType string
}

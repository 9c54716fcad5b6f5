package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ferryhq/ferry/internal/ferry"
)

// File stores objects as files under a root folder. Writes go to a temporary file that is renamed into place,
// so readers never see a partial object.
type File struct {
	root string
}

var _ Storage = (*File)(nil)

// OpenFile opens a file:// URL, creating the root folder if needed.
func OpenFile(u *url.URL) (*File, error) {
	root := u.Path
	if u.Host != "" && u.Host != "localhost" {
		return nil, ferry.Errorf(ferry.EINVALID, "storage URL %q: a file URL has no host; write file:///absolute/path", u.String())
	}
	if root == "" {
		return nil, ferry.Errorf(ferry.EINVALID, "storage URL %q: missing path; write file:///absolute/path", u.String())
	}
	return NewFile(root)
}

// NewFile returns a backend rooted at dir, creating it if needed.
func NewFile(dir string) (*File, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("storage root %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, ferry.Errorf(ferry.EUNAVAILABLE, "create storage root: %w", err)
	}
	return &File{root: abs}, nil
}

// Root is the folder the backend writes under.
func (s *File) Root() string { return s.root }

// path maps a key to a file, refusing keys that could leave the root.
func (s *File) path(key string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

// Get opens the file at key.
func (s *File) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fileErr("get", key, err)
	}
	return f, nil
}

// Stat reports the file's size and modification time.
func (s *File) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	p, err := s.path(key)
	if err != nil {
		return ObjectInfo{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return ObjectInfo{}, fileErr("stat", key, err)
	}
	if fi.IsDir() {
		return ObjectInfo{}, ferry.Errorf(ferry.ENOTFOUND, "stat %s: no such object", key)
	}
	return ObjectInfo{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Put writes body to a temporary file, checks its size and checksum, and renames it into place.
func (s *File) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts PutOptions) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return ferry.Errorf(ferry.EUNAVAILABLE, "put %s: %w", key, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".put-*")
	if err != nil {
		return ferry.Errorf(ferry.EUNAVAILABLE, "put %s: %w", key, err)
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), &ctxReader{ctx: ctx, r: body})
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return ferry.Errorf(ferry.EUNAVAILABLE, "put %s: %w", key, err)
	}
	if size >= 0 && n != size {
		return ferry.Errorf(ferry.EINVALID, "put %s: body has %d bytes, expected %d", key, n, size)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); opts.SHA256 != "" && sum != opts.SHA256 {
		return ferry.Errorf(ferry.EINVALID, "put %s: body SHA-256 %s does not match %s", key, sum, opts.SHA256)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return ferry.Errorf(ferry.EUNAVAILABLE, "put %s: %w", key, err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return ferry.Errorf(ferry.EUNAVAILABLE, "put %s: %w", key, err)
	}
	return nil
}

// Delete removes the file at key; a missing file is not an error.
func (s *File) Delete(ctx context.Context, key string) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return ferry.Errorf(ferry.EUNAVAILABLE, "delete %s: %w", key, err)
	}
	return nil
}

// DeleteMany removes each key in turn: a local unlink is as cheap as a batch entry.
func (s *File) DeleteMany(ctx context.Context, keys []string) error {
	for _, k := range keys {
		if err := checkKey(k); err != nil {
			return err
		}
	}
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			return ferry.Errorf(ferry.EUNAVAILABLE, "delete: %w", err)
		}
		if err := s.Delete(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// List walks the folder that holds prefix and returns the matching keys in lexical order.
func (s *File) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	dir := prefix
	if i := strings.LastIndex(dir, "/"); i >= 0 {
		dir = dir[:i]
	} else {
		dir = ""
	}
	start := s.root
	if dir != "" {
		p, err := s.path(dir)
		if err != nil {
			return nil, err
		}
		start = p
	}
	var out []ObjectInfo
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), ".put-") || strings.HasPrefix(d.Name(), casPrefix) {
			return nil
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted between reading the folder and this file: not listed, as on S3
		}
		if err != nil {
			return err
		}
		out = append(out, ObjectInfo{Key: key, Size: fi.Size(), ModTime: fi.ModTime()})
		return nil
	})
	if err != nil {
		return nil, ferry.Errorf(ferry.EUNAVAILABLE, "list %s: %w", prefix, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func fileErr(op, key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return ferry.Errorf(ferry.ENOTFOUND, "%s %s: no such object", op, key)
	}
	return ferry.Errorf(ferry.EUNAVAILABLE, "%s %s: %w", op, key, err)
}

// ctxReader stops a long copy when ctx is canceled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

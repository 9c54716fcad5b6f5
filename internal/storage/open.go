package storage

import (
	"context"
	"net/url"
	"path/filepath"

	"github.com/ferryhq/ferry/internal/ferry"
)

// Open returns the backend that rawURL names:
//
//	file:///var/lib/ferry
//	s3://BUCKET/PREFIX?region=R&endpoint=http://127.0.0.1:7070&path_style=true
func Open(ctx context.Context, rawURL string) (Storage, error) {
	u, err := url.Parse(rawURL)
	if err == nil && u.Scheme == "" && rawURL != "" {
		// A folder where a URL belongs (--storage .ferry/storage): say which URL that folder is.
		abs, aerr := filepath.Abs(rawURL)
		if aerr == nil {
			return nil, ferry.Errorf(ferry.EINVALID, "storage URL %q is a path, not a URL: for that folder pass file://%s", rawURL, filepath.ToSlash(abs))
		}
	}
	if err != nil || rawURL == "" {
		return nil, ferry.Errorf(ferry.EINVALID, "storage URL %q: want file:///path or s3://bucket/prefix", rawURL)
	}
	switch u.Scheme {
	case "file":
		return OpenFile(u)
	case "s3":
		s, err := OpenS3(ctx, u)
		if err != nil {
			return nil, err // not a typed nil inside the interface
		}
		return s, nil
	}
	return nil, ferry.Errorf(ferry.EINVALID, "storage URL %q: unknown scheme %q, want file:// or s3://", rawURL, u.Scheme)
}

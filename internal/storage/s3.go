package storage

import (
	"context"
	"net/url"

	"github.com/ferryhq/ferry/internal/ferry"
)

// OpenS3 opens an s3:// URL. (The S3 backend is being written; see issue 2.)
func OpenS3(ctx context.Context, u *url.URL) (Storage, error) {
	return nil, ferry.Errorf(ferry.EINVALID, "s3 storage is not available yet")
}

package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/ferryhq/ferry/internal/ferry"
)

// Conditional is implemented by backends that can write or delete a small object only while it is in the state
// the caller last saw. It is what a lock shared by several processes needs (the ACME certificate store's):
// "create if absent" and "replace or delete only if unchanged". A tag names one version of an object; it is
// opaque to callers. Every method returns ECONFLICT when the condition does not hold.
type Conditional interface {
	// GetTagged reads the object at key (ENOTFOUND if absent) and the tag of what it read.
	GetTagged(ctx context.Context, key string) ([]byte, string, error)
	// PutIf writes body at key if the object's tag is still ifTag, or, when ifTag is "", if no object exists.
	// It returns the new object's tag.
	PutIf(ctx context.Context, key string, body []byte, ifTag string) (string, error)
	// DeleteIf removes key if its tag is still tag. An object that is already gone is not an error.
	DeleteIf(ctx context.Context, key, tag string) error
}

var (
	_ Conditional = (*File)(nil)
	_ Conditional = (*S3)(nil)
)

// casPrefix names the hidden files the file backend takes flock(2) on, one per conditional key, so that
// processes sharing one folder (two proxies on one host) see each other's conditional writes. List skips them.
const casPrefix = ".cas-"

// withFlock runs f while holding an exclusive flock on key's side file. The object itself is replaced by rename,
// so it cannot carry the lock.
func (s *File) withFlock(ctx context.Context, key string, f func(p string) error) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return ferry.Wrap(ferry.EUNAVAILABLE, err)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return ferry.Errorf(ferry.EUNAVAILABLE, "lock %s: %w", key, err)
	}
	lf, err := os.OpenFile(filepath.Join(filepath.Dir(p), casPrefix+filepath.Base(p)), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return ferry.Errorf(ferry.EUNAVAILABLE, "lock %s: %w", key, err)
	}
	defer lf.Close() // closing releases the flock
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		return ferry.Errorf(ferry.EUNAVAILABLE, "lock %s: %w", key, err)
	}
	return f(p)
}

func contentTag(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:16])
}

// GetTagged reads the file at key; its tag is a hash of its content.
func (s *File) GetTagged(ctx context.Context, key string) ([]byte, string, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, "", err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, "", fileErr("get", key, err)
	}
	return b, contentTag(b), nil
}

// PutIf compares and writes under the key's flock.
func (s *File) PutIf(ctx context.Context, key string, body []byte, ifTag string) (string, error) {
	err := s.withFlock(ctx, key, func(p string) error {
		cur, err := os.ReadFile(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if ifTag != "" {
				return ferry.Errorf(ferry.ECONFLICT, "put %s: the object is gone", key)
			}
		case err != nil:
			return ferry.Errorf(ferry.EUNAVAILABLE, "put %s: %w", key, err)
		case ifTag == "":
			return ferry.Errorf(ferry.ECONFLICT, "put %s: the object exists", key)
		case contentTag(cur) != ifTag:
			return ferry.Errorf(ferry.ECONFLICT, "put %s: the object changed", key)
		}
		return s.Put(ctx, key, bytes.NewReader(body), int64(len(body)), PutOptions{})
	})
	if err != nil {
		return "", err
	}
	return contentTag(body), nil
}

// DeleteIf compares and removes under the key's flock.
func (s *File) DeleteIf(ctx context.Context, key, tag string) error {
	return s.withFlock(ctx, key, func(p string) error {
		cur, err := os.ReadFile(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil
		case err != nil:
			return ferry.Errorf(ferry.EUNAVAILABLE, "delete %s: %w", key, err)
		case contentTag(cur) != tag:
			return ferry.Errorf(ferry.ECONFLICT, "delete %s: the object changed", key)
		}
		return s.Delete(ctx, key)
	})
}

// GetTagged reads the object; its tag is the ETag.
func (s *S3) GetTagged(ctx context.Context, key string) ([]byte, string, error) {
	if err := checkKey(key); err != nil {
		return nil, "", err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key)})
	if err != nil {
		return nil, "", s.err("get", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, 1<<20))
	if err != nil {
		return nil, "", ferry.Errorf(ferry.EUNAVAILABLE, "read %s: %w", key, err)
	}
	return b, aws.ToString(out.ETag), nil
}

// PutIf sends If-None-Match: * (create only) or If-Match: ETag (replace only if unchanged), which S3 (since
// 2024) and versitygw enforce.
func (s *S3) PutIf(ctx context.Context, key string, body []byte, ifTag string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	in := &s3.PutObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key), Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body)))}
	if ifTag == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = aws.String(ifTag)
	}
	out, err := s.client.PutObject(ctx, in)
	if err != nil {
		return "", s.condErr("put", key, err)
	}
	return aws.ToString(out.ETag), nil
}

// DeleteIf sends If-Match: ETag with the delete.
func (s *S3) DeleteIf(ctx context.Context, key, tag string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key), IfMatch: aws.String(tag)})
	if err != nil {
		if err := s.condErr("delete", key, err); ferry.ErrorCode(err) != ferry.ENOTFOUND {
			return err
		}
	}
	return nil
}

// condErr maps a failed precondition (412, or 409 when two conditional writes race) to ECONFLICT. versitygw's
// posix backend answers a race of two writes of one key with 409 ExistingObjectIsDirectory (the other write's
// staging folder), which is the same race.
func (s *S3) condErr(op, key string, err error) error {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "PreconditionFailed", "ConditionalRequestConflict", "ExistingObjectIsDirectory":
			return ferry.Errorf(ferry.ECONFLICT, "%s %s: the object changed: %w", op, key, err)
		}
	}
	return s.err(op, key, err)
}

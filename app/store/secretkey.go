package store

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/ferryhq/ferry/internal/ferry"
)

// SecretKeySize is the length of the key that encrypts env vars: AES-256.
const SecretKeySize = 32

// EnvCipher encrypts env var values at rest with AES-256-GCM. Each value is bound to its project, environment
// and name (GCM's additional data), so a ciphertext copied into another row does not decrypt: someone with
// write access to the database alone cannot move a production secret into a preview build.
type EnvCipher struct {
	aead cipher.AEAD
}

// envCipherVersion starts every ciphertext, so that a later key rotation can tell old values apart.
const envCipherVersion = 1

// NewEnvCipher returns a cipher for a 32-byte key (LoadSecretKey).
func NewEnvCipher(key []byte) (*EnvCipher, error) {
	if len(key) != SecretKeySize {
		return nil, ferry.Errorf(ferry.EINVALID, "the secret key has %d bytes; it needs %d (make one with: head -c 32 /dev/urandom | base64)", len(key), SecretKeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	return &EnvCipher{aead: aead}, nil
}

func envAAD(projectID int64, environment, key string) []byte {
	return []byte("ferry-env\x00" + strconv.FormatInt(projectID, 10) + "\x00" + environment + "\x00" + key)
}

// Seal encrypts one value for its row.
func (c *EnvCipher) Seal(projectID int64, environment, key, value string) []byte {
	out := make([]byte, 1+c.aead.NonceSize(), 1+c.aead.NonceSize()+len(value)+c.aead.Overhead())
	out[0] = envCipherVersion
	_, _ = rand.Read(out[1:]) // crypto/rand.Read never fails (Go 1.24+)
	return c.aead.Seal(out, out[1:], []byte(value), envAAD(projectID, environment, key))
}

// Open decrypts one value of its row. A wrong key or a value moved from another row is EINTERNAL: the
// operator changed --secret-key-file or the database was tampered with.
func (c *EnvCipher) Open(projectID int64, environment, key string, sealed []byte) (string, error) {
	n := c.aead.NonceSize()
	if len(sealed) < 1+n+c.aead.Overhead() || sealed[0] != envCipherVersion {
		return "", ferry.Errorf(ferry.EINTERNAL, "env var %s (%s): stored value is malformed", key, environment)
	}
	plain, err := c.aead.Open(nil, sealed[1:1+n], sealed[1+n:], envAAD(projectID, environment, key))
	if err != nil {
		return "", ferry.Errorf(ferry.EINTERNAL, "env var %s (%s): cannot decrypt it; was --secret-key-file changed since it was saved?", key, environment)
	}
	return string(plain), nil
}

// ParseSecretKey reads a key in either form a key file may hold: 32 raw bytes, or their base64 (standard or
// URL alphabet, padded or not) with surrounding whitespace.
func ParseSecretKey(b []byte) ([]byte, error) {
	if len(b) == SecretKeySize {
		return b, nil
	}
	s := string(bytes.TrimSpace(b))
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil && len(k) == SecretKeySize {
			return k, nil
		}
	}
	return nil, ferry.Errorf(ferry.EINVALID, "the secret key must be %d random bytes, raw or base64 (make one with: head -c 32 /dev/urandom | base64)", SecretKeySize)
}

// LoadSecretKey reads the key file given by --secret-key-file.
func LoadSecretKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, ferry.Errorf(ferry.EINVALID, "read --secret-key-file: %w", err)
	}
	k, err := ParseSecretKey(b)
	if err != nil {
		return nil, fmt.Errorf("--secret-key-file %s: %w", path, err)
	}
	return k, nil
}

// EnsureSecretKeyFile loads the key at path, or creates the file (mode 0600, base64, folders as needed) with
// a new random key when it does not exist: what `ferry dev` does in .ferry/. Losing the file loses every
// stored env var value, so an existing file is never replaced.
func EnsureSecretKeyFile(path string) ([]byte, error) {
	k, err := LoadSecretKey(path)
	if err == nil {
		return k, nil
	}
	if _, statErr := os.Stat(path); !errors.Is(statErr, fs.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create secret key folder: %w", err)
	}
	k = make([]byte, SecretKeySize)
	_, _ = rand.Read(k)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) { // another process made it first: use theirs
		return LoadSecretKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("create secret key file: %w", err)
	}
	_, werr := f.WriteString(base64.StdEncoding.EncodeToString(k) + "\n")
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, fmt.Errorf("write secret key file: %w", werr)
	}
	return k, nil
}

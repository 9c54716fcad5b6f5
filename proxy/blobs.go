package proxy

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/valyala/fasthttp"
	"golang.org/x/sync/singleflight"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/storage"
)

// Encodings a blob may be cached in, in order of preference after identity.
const (
	encIdentity = iota
	encBrotli
	encGzip
	numEnc
)

// Compression settings: files are compressed once, when first fetched, so the levels can be high.
const (
	minCompressSize = 256
	maxCompressSize = 32 << 20
	gzipLevel       = fasthttp.CompressBestCompression
	brotliLevel     = 9
	blobFilePrefix  = "blob-"
)

// blob is one cached blob with its encodings. It is immutable once cached, except for the CLOCK reference bit
// and the eviction flag.
type blob struct {
	key      string
	variants [numEnc]variant
	mem      int64 // bytes held in memory, all variants
	disk     int64 // bytes held in the cache folder, all variants
	ref      atomic.Bool
	evicted  atomic.Bool
}

// variant is one encoding of a blob: in memory (mem) or in a cache file (disk). size 0 with neither set means
// the encoding is not available (not compressible, or compression did not pay).
type variant struct {
	ok   bool
	size int64
	mem  []byte
	disk *diskFile
}

// blobCache bounds blobs by bytes in memory and on disk, evicting with CLOCK (second chance): a hit only sets
// an atomic bit, so hits take no lock.
type blobCache struct {
	memLimit, diskLimit, threshold int64
	dir                            string
	metrics                        *metrics
	flight                         singleflight.Group

	mu             sync.Mutex
	entries        map[string]*blob
	ring           []*blob
	hand           int
	memUsed, diskU int64
}

func newBlobCache(memLimit, diskLimit, threshold int64, dir string, m *metrics) *blobCache {
	return &blobCache{memLimit: memLimit, diskLimit: diskLimit, threshold: threshold, dir: dir, metrics: m, entries: map[string]*blob{}}
}

// usage reports the bytes cached in memory and on disk.
func (c *blobCache) usage() (mem, disk int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.memUsed, c.diskU
}

// lookup returns f's blob if it is cached. The common case (the blob this file served last) takes no lock.
func (c *blobCache) lookup(f *file) *blob {
	if b := f.blob.Load(); b != nil && !b.evicted.Load() {
		if !b.ref.Load() {
			b.ref.Store(true)
		}
		c.metrics.blobHits.Inc()
		return b
	}
	c.mu.Lock()
	b := c.entries[f.blobKey]
	c.mu.Unlock()
	if b != nil {
		b.ref.Store(true)
		f.blob.Store(b)
		c.metrics.blobHits.Inc()
	}
	return b
}

// load fetches f's blob from storage after a lookup missed; concurrent misses share one fetch.
func (c *blobCache) load(ctx context.Context, st storage.Storage, f *file) (*blob, error) {
	c.metrics.blobMisses.Inc()
	v, err, _ := c.flight.Do(f.blobKey, func() (any, error) {
		c.mu.Lock()
		b := c.entries[f.blobKey]
		c.mu.Unlock()
		if b != nil {
			return b, nil
		}
		b, err := c.fetch(ctx, st, f)
		if err != nil {
			return nil, err
		}
		c.insert(b)
		return b, nil
	})
	if err != nil {
		return nil, err
	}
	b := v.(*blob)
	f.blob.Store(b)
	return b, nil
}

// fetch reads a blob from storage, checks it against its hash, and prepares its compressed variants.
func (c *blobCache) fetch(ctx context.Context, st storage.Storage, f *file) (*blob, error) {
	rc, err := st.Get(ctx, f.blobKey)
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", f.blobKey, err)
	}
	defer rc.Close()
	b := &blob{key: f.blobKey}
	h := sha256.New()
	var data []byte
	if f.size <= c.threshold {
		data = make([]byte, f.size)
		if _, err := io.ReadFull(io.TeeReader(rc, h), data); err != nil {
			return nil, ferry.Errorf(ferry.EUNAVAILABLE, "read blob %s: %w", f.blobKey, err)
		}
		if n, _ := rc.Read(make([]byte, 1)); n > 0 {
			return nil, ferry.Errorf(ferry.EINTERNAL, "blob %s is larger than its manifest says (%d bytes)", f.blobKey, f.size)
		}
		if hex.EncodeToString(h.Sum(nil)) != f.sha {
			return nil, ferry.Errorf(ferry.EINTERNAL, "blob %s does not match its hash", f.blobKey)
		}
		b.variants[encIdentity] = variant{ok: true, size: f.size, mem: data}
		b.mem += f.size
	} else {
		df, err := c.writeFile(io.TeeReader(io.LimitReader(rc, f.size+1), h), f.size)
		if err != nil {
			return nil, fmt.Errorf("cache blob %s: %w", f.blobKey, err)
		}
		if hex.EncodeToString(h.Sum(nil)) != f.sha {
			df.evict()
			return nil, ferry.Errorf(ferry.EINTERNAL, "blob %s does not match its hash", f.blobKey)
		}
		b.variants[encIdentity] = variant{ok: true, size: f.size, disk: df}
		b.disk += f.size
		if f.compressible && f.size <= maxCompressSize {
			if data, err = os.ReadFile(df.path); err != nil {
				df.evict()
				return nil, ferry.Errorf(ferry.EUNAVAILABLE, "read cached blob %s: %w", f.blobKey, err)
			}
		}
	}
	if f.compressible && f.size >= minCompressSize && data != nil {
		for enc, z := range map[int][]byte{
			encBrotli: fasthttp.AppendBrotliBytesLevel(nil, data, brotliLevel),
			encGzip:   fasthttp.AppendGzipBytesLevel(nil, data, gzipLevel),
		} {
			if int64(len(z)) > f.size*9/10 {
				continue // not worth a Content-Encoding
			}
			if int64(len(z)) <= c.threshold {
				b.variants[enc] = variant{ok: true, size: int64(len(z)), mem: z}
				b.mem += int64(len(z))
				continue
			}
			df, err := c.writeFile(bytesReader(z), int64(len(z)))
			if err != nil {
				b.release()
				return nil, fmt.Errorf("cache compressed blob %s: %w", f.blobKey, err)
			}
			b.variants[enc] = variant{ok: true, size: int64(len(z)), disk: df}
			b.disk += int64(len(z))
		}
	}
	return b, nil
}

func bytesReader(b []byte) io.Reader { return &byteReader{b: b} }

type byteReader struct{ b []byte }

func (r *byteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// writeFile copies exactly size bytes from r into a new cache file.
func (c *blobCache) writeFile(r io.Reader, size int64) (*diskFile, error) {
	f, err := os.CreateTemp(c.dir, blobFilePrefix+"*")
	if err != nil {
		return nil, ferry.Errorf(ferry.EUNAVAILABLE, "create cache file: %w", err)
	}
	n, err := io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != size {
		err = ferry.Errorf(ferry.EINTERNAL, "blob has %d bytes, its manifest says %d", n, size)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		var fe *ferry.Error
		if !errors.As(err, &fe) { // a storage read or a local disk write broke off
			err = ferry.Wrap(ferry.EUNAVAILABLE, err)
		}
		return nil, err
	}
	return &diskFile{path: f.Name(), size: size}, nil
}

// insert adds b and evicts until both budgets hold again. The newest blob is never evicted by its own insert,
// so that a blob larger than the budget is still served once.
func (c *blobCache) insert(b *blob) {
	b.ref.Store(true)
	var evicted []*blob
	c.mu.Lock()
	c.entries[b.key] = b
	c.ring = append(c.ring, b)
	c.memUsed += b.mem
	c.diskU += b.disk
	for (c.memUsed > c.memLimit || c.diskU > c.diskLimit) && len(c.ring) > 1 {
		if c.hand >= len(c.ring) {
			c.hand = 0
		}
		v := c.ring[c.hand]
		if v == b || v.ref.Swap(false) {
			c.hand++
			continue
		}
		last := len(c.ring) - 1
		c.ring[c.hand] = c.ring[last]
		c.ring[last] = nil
		c.ring = c.ring[:last]
		delete(c.entries, v.key)
		c.memUsed -= v.mem
		c.diskU -= v.disk
		v.evicted.Store(true)
		evicted = append(evicted, v)
	}
	c.mu.Unlock()
	for _, v := range evicted {
		c.metrics.blobEvictions.Inc()
		v.release()
	}
}

// release removes b's cache files; responses that are sending them keep their open handles.
func (b *blob) release() {
	for i := range b.variants {
		if d := b.variants[i].disk; d != nil {
			d.evict()
		}
	}
}

func (c *blobCache) close() error {
	c.mu.Lock()
	all := c.ring
	c.ring, c.entries, c.memUsed, c.diskU = nil, map[string]*blob{}, 0, 0
	c.mu.Unlock()
	for _, b := range all {
		b.evicted.Store(true)
		b.release()
	}
	return nil
}

// diskFile is a cache file with a small pool of open handles, so that serving it costs neither an open nor a
// close.
type diskFile struct {
	path string
	size int64

	mu      sync.Mutex
	free    []*fileStream
	evicted bool
}

const maxFreeHandles = 64

// fileStream is a response body of n bytes of a cache file from offset off. fasthttp hands a body that is an
// io.WriterTo its buffered connection writer; on a client socket (a *tcpConn), WriteTo flushes the response
// headers with MSG_MORE and then sends the file with sendfile at an explicit offset. That is four system calls
// fewer per response than net.TCPConn.ReadFrom under TCP_CORK (no cork, no uncork, and no seek to find or
// rewind the file position, which sendfile with an offset leaves alone), while the headers and the file still
// leave in full segments as with nginx's tcp_nopush. Other writers read the file with pread.
type fileStream struct {
	conn   *tcpConn // the client socket, when sendfile can reach it
	f      *os.File
	fd     int
	d      *diskFile
	off, n int64
}

// Read serves writers other than a client socket's buffered writer.
func (s *fileStream) Read(p []byte) (int, error) {
	if s.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > s.n {
		p = p[:s.n]
	}
	m, err := s.f.ReadAt(p, s.off)
	s.off += int64(m)
	s.n -= int64(m)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF // the file is shorter than its blob: it was changed under the cache
	}
	if m == len(p) {
		err = nil
	}
	return m, err
}

// streamReader is a fileStream without WriteTo, so that io.Copy falls back to its Read.
type streamReader fileStream

func (r *streamReader) Read(p []byte) (int, error) { return (*fileStream)(r).Read(p) }

// WriteTo sends the remaining bytes, with sendfile when w is the buffered writer of a client socket.
func (s *fileStream) WriteTo(w io.Writer) (int64, error) {
	bw, ok := w.(*bufio.Writer)
	if !ok || s.conn == nil {
		return io.Copy(w, (*streamReader)(s))
	}
	s.conn.more = true
	err := bw.Flush()
	s.conn.more = false
	if err != nil {
		return 0, err
	}
	n, err := s.conn.sendfile(s.fd, s.off, s.n)
	s.off += n
	s.n -= n
	return n, err
}

// Close returns the handle to its pool.
func (s *fileStream) Close() error {
	s.conn = nil
	s.d.put(s)
	return nil
}

// open returns a stream of n bytes of the file from offset start.
func (d *diskFile) open(start, n int64) (*fileStream, error) {
	s, err := d.handle()
	if err != nil {
		return nil, err
	}
	s.off, s.n = start, n
	return s, nil
}

func (d *diskFile) handle() (*fileStream, error) {
	d.mu.Lock()
	if n := len(d.free); n > 0 {
		s := d.free[n-1]
		d.free[n-1] = nil
		d.free = d.free[:n-1]
		d.mu.Unlock()
		return s, nil
	}
	d.mu.Unlock()
	f, err := os.Open(d.path)
	if err != nil {
		return nil, fmt.Errorf("open cache file: %w", err)
	}
	return &fileStream{f: f, fd: int(f.Fd()), d: d}, nil
}

func (d *diskFile) put(s *fileStream) {
	d.mu.Lock()
	if d.evicted || len(d.free) >= maxFreeHandles {
		d.mu.Unlock()
		s.f.Close()
		return
	}
	d.free = append(d.free, s)
	d.mu.Unlock()
}

func (d *diskFile) evict() {
	d.mu.Lock()
	free := d.free
	d.free, d.evicted = nil, true
	d.mu.Unlock()
	for _, s := range free {
		s.f.Close()
	}
	_ = os.Remove(d.path)
}

package site

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/ferryhq/ferry/internal/ferry"
)

// The writer/collector handshake (docs/architecture.md, "Retention and garbage collection").
//
// A publish decides which blobs to upload from a listing, and writes a manifest naming blobs it did not upload.
// A garbage collector deletes blobs that no manifest names. Run together, the collector could delete a blob the
// publish saw and skipped, and the manifest would name a missing blob. So both sides announce themselves in
// storage first and look for the other second (Dekker's handshake; S3 and the file backend are strongly
// consistent, so a listing after a write sees it):
//
//   - a writer (Publish, AliasSet) puts projects/<p>/publishing/<token>.json, then lists projects/<p>/gc/leases/
//     and waits while a live lease is there; only then does it list blobs or read the manifest it points at;
//   - the collector puts projects/<p>/gc/leases/<run>.json, then lists projects/<p>/publishing/ and leaves the
//     project's deployments and blobs alone while a live marker is there.
//
// At least one side sees the other, so a collector never sweeps a project between a writer's listing and its
// manifest (or alias).

// WriterMarkerTTL is how long a writer's marker holds collection off. A marker older than this is left over from
// a writer that died, and the collector removes it. Publish refuses to write its manifest once
// writerMaxElapsed has passed, an hour short of the TTL, so clock skew between machines up to that hour is
// harmless.
const WriterMarkerTTL = 6 * time.Hour

// writerMaxElapsed is how long a publish may take from its marker to its manifest.
const writerMaxElapsed = WriterMarkerTTL - time.Hour

// GCLeaseTerm is how long a collector's lease lasts unless renewed. The collector renews it while it works and
// issues no delete after it lapses; a writer waits for GCLeaseTerm+GCLeaseMargin past the lease's expiry as the
// collector wrote it, so that a collector killed with kill -9 holds publishes back a few minutes at most.
const GCLeaseTerm = 2 * time.Minute

// GCLeaseMargin is how long after a lease's written expiry a writer still honours it: clock skew between the
// collector and the writer, plus a delete request already in flight at expiry (bounded by the S3 client's
// timeouts, well under a minute).
const GCLeaseMargin = 2 * time.Minute

// WriterPrefix holds the markers of a project's writers in progress.
func WriterPrefix(project string) string { return ProjectPrefix(project) + "publishing/" }

// GCLeasePrefix holds the leases of a project's collectors at work.
func GCLeasePrefix(project string) string { return ProjectPrefix(project) + "gc/leases/" }

// WriterMarker is the object a writer leaves at WriterPrefix while it works: for people reading the bucket.
type WriterMarker struct {
	Op         string    `json:"op"` // "publish" or "alias"
	Deployment string    `json:"deployment"`
	StartedAt  time.Time `json:"startedAt"`
}

// GCLease is the object a collector keeps at GCLeasePrefix while it may delete.
type GCLease struct {
	Run       string    `json:"run"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// writer is one writer's marker, held from before its first listing until after its last write.
type writer struct {
	s       *Store
	key     string
	started time.Time
}

// gcPoll is how often a waiting writer looks again for the collector's lease.
var gcPoll = 500 * time.Millisecond

// writerBegin announces a writer, then waits while a collector holds a live lease on the project. The caller
// calls end when done, success or not.
func (s *Store) writerBegin(ctx context.Context, project, op, deployment string, log *slog.Logger) (*writer, error) {
	w := &writer{s: s, key: WriterPrefix(project) + deployment + "-" + randomToken() + ".json", started: time.Now()}
	data, err := json.Marshal(WriterMarker{Op: op, Deployment: deployment, StartedAt: w.started.UTC()})
	if err != nil {
		return nil, fmt.Errorf("encode writer marker: %w", err)
	}
	if err := s.putBytes(ctx, w.key, data); err != nil {
		return nil, fmt.Errorf("announce %s: %w", op, err)
	}
	logged := false
	for {
		live, err := s.gcLeaseLive(ctx, project)
		if err != nil || !live {
			if err != nil {
				w.end(context.WithoutCancel(ctx))
				return nil, fmt.Errorf("look for a garbage collection of %s: %w", project, err)
			}
			return w, nil
		}
		if !logged && log != nil {
			log.Info("waiting for a garbage collection of this project to finish", "project", project)
			logged = true
		}
		select {
		case <-ctx.Done():
			w.end(context.WithoutCancel(ctx))
			return nil, ferry.Errorf(ferry.EUNAVAILABLE, "wait for garbage collection of %s: %w", project, ctx.Err())
		case <-time.After(gcPoll):
		}
	}
}

// gcLeaseLive reports whether some collector's lease on project is still honoured.
func (s *Store) gcLeaseLive(ctx context.Context, project string) (bool, error) {
	objs, err := s.Storage.List(ctx, GCLeasePrefix(project))
	if err != nil {
		return false, err
	}
	now := time.Now()
	for _, o := range objs {
		if !strings.HasSuffix(o.Key, ".json") {
			continue
		}
		data, err := s.read(ctx, o.Key, maxAliasBytes)
		if ferry.ErrorCode(err) == ferry.ENOTFOUND {
			continue // released between the listing and the read
		}
		if err != nil {
			return false, err
		}
		var l GCLease
		if err := json.Unmarshal(data, &l); err != nil || l.ExpiresAt.IsZero() {
			// Unreadable: honour it by its age, as if it had the longest term.
			if now.Before(o.ModTime.Add(GCLeaseTerm + GCLeaseMargin)) {
				return true, nil
			}
			continue
		}
		if now.Before(l.ExpiresAt.Add(GCLeaseMargin)) {
			return true, nil
		}
	}
	return false, nil
}

// checkFresh refuses to make anything live once the writer has run so long that a collector may have taken its
// marker for a dead one's.
func (w *writer) checkFresh() error {
	if d := time.Since(w.started); d > writerMaxElapsed {
		return ferry.Errorf(ferry.EUNAVAILABLE, "publish took %s, longer than the %s a garbage collector waits for; publish again", d.Round(time.Minute), writerMaxElapsed)
	}
	return nil
}

// end removes the marker. A marker that cannot be removed only delays collection until WriterMarkerTTL.
func (w *writer) end(ctx context.Context) {
	_ = w.s.Storage.Delete(ctx, w.key)
}

func randomToken() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

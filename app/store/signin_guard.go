package store

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/internal/ferry"
)

// LoginAttemptTakeParams is one log-in attempt about to check a password.
type LoginAttemptTakeParams struct {
	// Keys name who is trying ("account:EMAIL", "device:HASH", "ip:ADDR"), and Limits[i] is how many attempts
	// Keys[i] may have within the window (Since until now).
	Keys   []string
	Limits []int
	Since  time.Time
}

// LoginAttemptTake records an attempt under every key before the password is checked, unless a key has used
// up its limit, in which case it records nothing and returns that key. The check and the insert run under a
// transaction-scoped advisory lock per key, taken in sorted order, so that concurrent attempts on one account
// queue here and no more than the limit get through, however many arrive at once (checking first and
// recording after the hash let 150 concurrent guesses all pass). It returns the new rows' ids; the caller
// forgets them (LoginAttemptForget) when the password was right, so only failures count.
func (s *Store) LoginAttemptTake(ctx context.Context, p LoginAttemptTakeParams) (ids []int64, limited string, err error) {
	if len(p.Keys) != len(p.Limits) || len(p.Keys) == 0 {
		return nil, "", ferry.Errorf(ferry.EINVALID, "take log-in attempt: %d keys, %d limits", len(p.Keys), len(p.Limits))
	}
	sorted := slices.Clone(p.Keys)
	slices.Sort(sorted)
	err = s.InTx(ctx, func(st *Store, _ pgx.Tx) error {
		if _, err := st.db.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended(k, 4711)) FROM unnest($1::text[]) WITH ORDINALITY AS t(k, n) ORDER BY n`, sorted); err != nil {
			return dbError("lock log-in attempts", err)
		}
		rows, err := st.db.Query(ctx, `SELECT k, (SELECT count(*) FROM login_attempts a WHERE a.key = k AND a.at > $2)
			FROM unnest($1::text[]) AS k`, p.Keys, p.Since)
		if err != nil {
			return dbError("count log-in attempts", err)
		}
		counts := map[string]int{}
		for rows.Next() {
			var k string
			var n int
			if err := rows.Scan(&k, &n); err != nil {
				rows.Close()
				return dbError("count log-in attempts", err)
			}
			counts[k] = n
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return dbError("count log-in attempts", err)
		}
		for i, k := range p.Keys {
			if counts[k] >= p.Limits[i] {
				limited = k
				return nil
			}
		}
		rows, err = st.db.Query(ctx, `INSERT INTO login_attempts (key) SELECT unnest($1::text[]) RETURNING id`, p.Keys)
		if err != nil {
			return dbError("record log-in attempt", err)
		}
		ids, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return dbError("record log-in attempt", err)
		}
		return nil
	})
	if err != nil || limited != "" {
		return nil, limited, err
	}
	return ids, "", nil
}

// LoginAttemptForget deletes attempts that LoginAttemptTake recorded, once the password proved right (or was
// never checked).
func (s *Store) LoginAttemptForget(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := s.db.Exec(ctx, `DELETE FROM login_attempts WHERE id = ANY($1)`, ids); err != nil {
		return dbError("forget log-in attempt", err)
	}
	return nil
}

// KnownDeviceRecord remembers a browser that signed in as userID, by the SHA-256 of its device cookie.
func (s *Store) KnownDeviceRecord(ctx context.Context, userID int64, tokenHash []byte) error {
	if _, err := s.db.Exec(ctx, `INSERT INTO known_devices (token_hash, user_id) VALUES ($1, $2)
		ON CONFLICT (token_hash) DO UPDATE SET last_used_at = now() WHERE known_devices.user_id = excluded.user_id`,
		tokenHash, userID); err != nil {
		return dbError("record known device", err)
	}
	return nil
}

// KnownDeviceUser returns the user a device cookie belongs to; an unknown one, or one unused for longer than
// maxAge, is ENOTFOUND.
func (s *Store) KnownDeviceUser(ctx context.Context, tokenHash []byte, maxAge time.Duration) (int64, error) {
	var userID int64
	err := s.db.QueryRow(ctx, `SELECT user_id FROM known_devices WHERE token_hash = $1 AND last_used_at > now() - make_interval(secs => $2)`,
		tokenHash, maxAge.Seconds()).Scan(&userID)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, notFound("unknown device")
	}
	if err != nil {
		return 0, dbError("get known device", err)
	}
	return userID, nil
}

// InviteCreate records an invite by the SHA-256 of its token. createdBy is 0 for one the operator made.
func (s *Store) InviteCreate(ctx context.Context, createdBy int64, tokenHash []byte, expiresAt time.Time) error {
	if _, err := s.db.Exec(ctx, `INSERT INTO invites (token_hash, created_by, expires_at) VALUES ($1, $2, $3)`,
		tokenHash, nullInt64(createdBy), expiresAt); err != nil {
		return dbError("create invite", err)
	}
	return nil
}

// InviteCheck reports whether an invite is live, without using it (the sign-up page shows its form), and who
// made it (0: the operator).
func (s *Store) InviteCheck(ctx context.Context, tokenHash []byte) (createdBy int64, err error) {
	var by *int64
	var live bool
	err = s.db.QueryRow(ctx, `SELECT created_by, expires_at > now() FROM invites WHERE token_hash = $1`, tokenHash).Scan(&by, &live)
	if errors.Is(err, pgx.ErrNoRows) || err == nil && !live {
		return 0, notFound("this invite link is unknown, expired or was used already; ask for a new one")
	}
	if err != nil {
		return 0, dbError("check invite", err)
	}
	if by != nil {
		createdBy = *by
	}
	return createdBy, nil
}

// InviteUse consumes an invite and returns who made it (0: the operator). Run it in the transaction that
// creates the account, so that an account that cannot be created leaves the invite unused; two concurrent uses
// cannot both succeed, because the row is deleted as it is read.
func (s *Store) InviteUse(ctx context.Context, tokenHash []byte) (createdBy int64, err error) {
	var by *int64
	var live bool
	err = s.db.QueryRow(ctx, `DELETE FROM invites WHERE token_hash = $1 RETURNING created_by, expires_at > now()`, tokenHash).Scan(&by, &live)
	if errors.Is(err, pgx.ErrNoRows) || err == nil && !live {
		return 0, notFound("this invite link is unknown, expired or was used already; ask for a new one")
	}
	if err != nil {
		return 0, dbError("use invite", err)
	}
	if by != nil {
		createdBy = *by
	}
	return createdBy, nil
}

// UserCount returns how many accounts exist; 0 means a fresh server whose first account the operator invites.
func (s *Store) UserCount(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&n); err != nil {
		return 0, dbError("count users", err)
	}
	return n, nil
}

func init() {
	constraintMessages["invites_created_by_fkey"] = "the inviting user does not exist"
	constraintMessages["known_devices_user_id_fkey"] = "the user does not exist"
}

// SignInGuardSweep deletes expired invites and devices unused for longer than deviceMaxAge, so that the tables
// stay small.
func (s *Store) SignInGuardSweep(ctx context.Context, deviceMaxAge time.Duration) error {
	if _, err := s.db.Exec(ctx, `DELETE FROM invites WHERE expires_at <= now()`); err != nil {
		return dbError("delete expired invites", err)
	}
	if _, err := s.db.Exec(ctx, `DELETE FROM known_devices WHERE last_used_at < now() - make_interval(secs => $1)`, deviceMaxAge.Seconds()); err != nil {
		return dbError("delete old devices", err)
	}
	return nil
}

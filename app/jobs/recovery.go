package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ferryhq/ferry/app/store"
)

// crashReason is what a job rescued at start-up records in its errors.
const crashReason = "the app instance running this job stopped without finishing it (a crash or a kill); taken back at its restart"

// maxClientID is River's limit on a client id.
const maxClientID = 100

// Instance is one app process's identity on the queue: a River client id that stays the same across restarts
// of the same instance, so that a restarted instance can tell which running jobs were its own. It holds a
// session lock on that id for as long as it lives; Release it when the River client has stopped.
type Instance struct {
	// ID is the River client id to run with (river.Config.ID).
	ID string
	// Rescued are the jobs taken back from this instance's previous life.
	Rescued []store.RescuedJob

	conn *pgxpool.Conn
}

// InstanceName names an app instance after what two instances on one database cannot share: the host and
// the address it listens on (and, for `ferry dev`, nothing more is needed). It is cut to River's 100 bytes.
func InstanceName(listen string) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	name := "ferry@" + host + "/" + listen
	if len(name) > maxClientID-9 { // room for the "-<hex>" of a taken name
		name = name[:maxClientID-9]
	}
	return name
}

// Recover claims name for this process and takes back, at once, the jobs that the instance of the same name
// left running when it died: attempts that would otherwise sit "running" until River's rescuer reclaims them
// after RescueStuckJobsAfter (BuildTimeout + 5m). It is safe because a live instance holds the name's session
// lock: when the lock is free, the previous holder's connection is gone, so is the process, and with it every
// local build (they die with the app, builder.Local's Pdeathsig). When another live process holds the name
// (two instances configured alike), this one runs under a random suffix and rescues nothing: River's rescuer
// stays the fallback for them, as for replicas on other machines.
//
// Call it after migrations and before the River client starts, with the Instance's ID in river.Config.ID.
// Rescued deploy jobs run again as their next attempt; one that was on its last attempt is discarded, and the
// sweep marks its deployment error.
func Recover(ctx context.Context, pool *pgxpool.Pool, name string, logger *slog.Logger) (*Instance, error) {
	if logger == nil {
		logger = slog.Default()
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("claim app instance %s: %w", name, err)
	}
	inst := &Instance{ID: name, conn: conn}
	st := store.New(conn.Conn())
	ok, err := st.InstanceLockTry(ctx, name)
	if err != nil {
		conn.Release()
		return nil, err
	}
	if !ok {
		suffix := make([]byte, 4)
		_, _ = rand.Read(suffix)
		inst.ID = name + "-" + hex.EncodeToString(suffix)
		logger.WarnContext(ctx, "another running process uses this app instance name; running under a random one, and jobs of a crashed instance wait for River's rescuer",
			"name", name, "client_id", inst.ID)
		if ok, err = st.InstanceLockTry(ctx, inst.ID); err != nil || !ok {
			conn.Release()
			return nil, fmt.Errorf("claim app instance %s: lock not taken: %w", inst.ID, err)
		}
		return inst, nil
	}
	inst.Rescued, err = st.JobRescueByClient(ctx, store.JobRescueByClientParams{ClientID: name, Reason: crashReason})
	if err != nil {
		conn.Release()
		return nil, err
	}
	for _, j := range inst.Rescued {
		logger.WarnContext(ctx, "took back a job left running by this instance's previous run",
			"job", j.ID, "kind", j.Kind, "attempt", j.Attempt, "max_attempts", j.MaxAttempts, "now", j.State,
			"deployment", j.DeploymentID)
	}
	return inst, nil
}

// Release frees the instance name; the process may then exit. Releasing twice is harmless.
func (i *Instance) Release() {
	if i == nil || i.conn == nil {
		return
	}
	// Closing the connection (rather than returning it to the pool) is what frees a session lock for sure.
	_ = i.conn.Conn().Close(context.Background())
	i.conn.Release()
	i.conn = nil
}

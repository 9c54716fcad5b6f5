package jobs

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/pgtest"
)

// TestRecover checks the start-up rescue on a real database: the running jobs last attempted by this
// instance's name come back at once (or are discarded on their last attempt), jobs of other clients are left
// to River's rescuer, and a name held by a live process is never used to rescue anything.
func TestRecover(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.New(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	insert := func(state string, attempt int, by ...string) int64 {
		t.Helper()
		var id int64
		err := pool.QueryRow(ctx, `
			INSERT INTO river_job (args, kind, max_attempts, queue, state, attempt, attempted_at, attempted_by)
			VALUES ('{"deployment_id":"dpl-x"}', 'deploy', 3, 'build', $1::river_job_state, $2, now(), $3)
			RETURNING id`, state, attempt, by).Scan(&id)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	stateOf := func(id int64) (state string, errs int) {
		t.Helper()
		if err := pool.QueryRow(ctx, `SELECT state::text, coalesce(array_length(errors, 1), 0) FROM river_job WHERE id = $1`, id).Scan(&state, &errs); err != nil {
			t.Fatal(err)
		}
		return state, errs
	}
	const name = "ferry@host/127.0.0.1:8080"
	mine := insert("running", 1, "other-client", name) // retried elsewhere before, last attempted by this instance
	last := insert("running", 3, name)
	elsewhere := insert("running", 1, name, "other-client")
	waiting := insert("available", 0)

	// A live process holds the name: a second one must not touch that process's running jobs.
	holder, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_lock(hashtextextended('ferry.instance:' || $1, 0))`, name); err != nil {
		t.Fatal(err)
	}
	twin, err := Recover(ctx, pool, name, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if twin.ID == name || !strings.HasPrefix(twin.ID, name+"-") || len(twin.Rescued) != 0 {
		t.Fatalf("with the name held: id %q rescued %+v; want a suffixed id and nothing rescued", twin.ID, twin.Rescued)
	}
	if s, _ := stateOf(mine); s != "running" {
		t.Fatalf("a live instance's job became %s", s)
	}
	twin.Release()
	var holderPID int32
	if err := holder.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&holderPID); err != nil {
		t.Fatal(err)
	}
	holder.Conn().Close(ctx) // the holder "dies": its session lock goes with its connection
	holder.Release()
	// The server ends the backend (and frees its locks) a moment after the client hangs up.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var alive bool
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)`, holderPID).Scan(&alive); err != nil {
			t.Fatal(err)
		}
		if !alive {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the holder's backend outlived its connection by 10 s")
		}
	}

	inst, err := Recover(ctx, pool, name, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Release()
	if inst.ID != name {
		t.Fatalf("id %q, want the stable name %q", inst.ID, name)
	}
	if len(inst.Rescued) != 2 {
		t.Fatalf("rescued %+v, want jobs %d and %d", inst.Rescued, mine, last)
	}
	for id, want := range map[int64]string{mine: "available", last: "discarded", elsewhere: "running", waiting: "available"} {
		s, errs := stateOf(id)
		if s != want {
			t.Errorf("job %d: state %s, want %s", id, s, want)
		}
		if rescued := id == mine || id == last; rescued != (errs == 1) {
			t.Errorf("job %d: %d errors recorded", id, errs)
		}
	}
	for _, j := range inst.Rescued {
		if j.DeploymentID != "dpl-x" || j.Kind != "deploy" {
			t.Errorf("rescued job %+v lacks its kind or deployment", j)
		}
	}

	// While inst lives, the name is taken; after Release it is free again.
	if again, err := Recover(ctx, pool, name, quiet); err != nil || again.ID == name {
		t.Fatalf("second claim while alive: %v %+v", err, again)
	} else {
		again.Release()
	}
	inst.Release()
	inst.Release() // harmless
	free, err := Recover(ctx, pool, name, quiet)
	if err != nil || free.ID != name {
		t.Fatalf("claim after release: %v %+v", err, free)
	}
	free.Release()
}

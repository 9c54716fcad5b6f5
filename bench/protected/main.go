// Command protected prepares bench/protected.sh: it protects a project's previews in a storage folder (as the
// dashboard or the Action would) and prints an access cookie for one preview host, so that wrk can fetch the
// protected page as a signed-in visitor.
//
//	go run ./bench/protected STORAGE_URL PROJECT HOST
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/ferryhq/ferry/internal/protect"
	"github.com/ferryhq/ferry/internal/storage"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: protected STORAGE_URL PROJECT HOST")
		os.Exit(2)
	}
	ctx := context.Background()
	st, err := storage.Open(ctx, os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s := &protect.Settings{Mode: protect.Previews, Members: true}
	s.Rotate()
	if err := protect.Put(ctx, st, os.Args[2], s); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(protect.Cookie(s.Key, s.KeyID, os.Args[3], protect.KindMember, time.Now().Add(time.Hour)))
}

package process_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/passbatch/passbatch/config"
	"github.com/passbatch/passbatch/internal/testenv"
	"github.com/passbatch/passbatch/process"
	"github.com/passbatch/passbatch/storage"
)

// TestRefusesRedisCluster: a REDIS_URL naming a Redis Cluster node stops the
// process at start with ErrRedisCluster, instead of CROSSSLOT errors later.
func TestRefusesRedisCluster(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	cmd := exec.Command("redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "", "--dir", dir,
		"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	db := testenv.NewDB(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	open := func(redisURL string) error {
		cfg, err := config.Load(func(k string) (string, bool) {
			v, ok := map[string]string{"DATABASE_URL": db.URL, "REDIS_URL": redisURL}[k]
			return v, ok
		}, config.Need{Redis: true})
		if err != nil {
			return err
		}
		sys, err := process.Open(context.Background(), cfg, log, "system-test")
		if err == nil {
			sys.Close()
		}
		return err
	}
	if err := open(fmt.Sprintf("redis://127.0.0.1:%d/0", port)); !errors.Is(err, process.ErrRedisCluster) {
		t.Fatalf("a Redis Cluster node: %v, want ErrRedisCluster", err)
	}
	if err := open(testenv.NewRedis(t).URL); err != nil {
		t.Fatalf("a plain Redis: %v", err)
	}
}

// TestStorageOnlyWhereFilesAreUsed: a process that uses no files (the
// scheduler) opens no store, so it needs no storage credentials; one that
// does (worker, api) fails at start when its store cannot be reached.
func TestStorageOnlyWhereFilesAreUsed(t *testing.T) {
	db := testenv.NewDB(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	open := func(need config.Need) (*process.System, error) {
		cfg, err := config.Load(func(k string) (string, bool) {
			v, ok := map[string]string{"DATABASE_URL": db.URL, "STORAGE_URL": "s3://nowhere", "S3_ENDPOINT": "127.0.0.1:1", "S3_INSECURE": "true"}[k]
			return v, ok
		}, need)
		if err != nil {
			t.Fatal(err)
		}
		return process.Open(context.Background(), cfg, log, "system-test")
	}
	sys, err := open(config.Need{})
	if err != nil {
		t.Fatalf("a process without files: %v, want it to start without reaching the store", err)
	}
	if _, err := sys.Store.List(context.Background(), "x/"); !errors.Is(err, storage.ErrNotConfigured) {
		t.Fatalf("its store: %v, want ErrNotConfigured", err)
	}
	sys.Close()
	if sys, err := open(config.Need{Storage: true}); err == nil {
		sys.Close()
		t.Fatal("a process that uses files started with an unreachable store")
	}
}

package chaos

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The machinery of the suite: a private Postgres cluster and redis-server
// that scenarios may restart, and the project's binaries run as processes.

// freePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// postgres is a private Postgres cluster in a temporary directory.
type postgres struct {
	t    *testing.T
	bin  string // the server binaries' directory
	dir  string
	port int
	// alt is a second port the clients list after port (DATABASE_URL
	// with two hosts): switchPort moves the server there.
	alt  int
	root bool // Postgres refuses root: run its commands as the postgres user
}

// pgBin finds the newest Postgres server binaries.
func pgBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) < versionOf(dirs[j]) })
	if len(dirs) > 0 {
		return dirs[len(dirs)-1], nil
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("no Postgres server binaries (initdb, pg_ctl) found")
}

func versionOf(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// startPostgres creates and starts a cluster; it is removed when t ends.
func startPostgres(t *testing.T) *postgres {
	t.Helper()
	bin, err := pgBin()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "passbatch-chaos-pg-")
	if err != nil {
		t.Fatal(err)
	}
	pg := &postgres{t: t, bin: bin, dir: dir, port: freePort(t), alt: freePort(t), root: os.Getuid() == 0}
	t.Cleanup(func() { pg.ctl("stop", "-m", "immediate"); os.RemoveAll(dir) })
	if pg.root {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs the postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := pg.command("initdb", "-D", pg.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	// fsync off is safe for the faults here (the OS keeps what a killed
	// server wrote); synchronous_commit stays on: off, an immediate stop
	// loses commits already acknowledged, which no production setting
	// does (a partition whose last chunk was lost that way waits for the
	// reconciler).
	conf := fmt.Sprintf(`
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
fsync = off
full_page_writes = off
max_connections = 300
shared_buffers = 128MB
`, pg.port, dir)
	f, err := os.OpenFile(filepath.Join(pg.data(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString(conf)
		f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	pg.start()
	return pg
}

func (pg *postgres) data() string { return filepath.Join(pg.dir, "data") }

// URL connects to database db as postgres, listing both ports with
// target_session_attrs=read-write, as a client of a primary and its
// standby would.
func (pg *postgres) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/%s?sslmode=disable&target_session_attrs=read-write", pg.port, pg.alt, db)
}

// switchPort stops the server at once and starts the same data on the
// other port: to its clients, the primary moved to another host.
func (pg *postgres) switchPort() {
	pg.t.Helper()
	pg.stop()
	pg.port, pg.alt = pg.alt, pg.port
	pg.start()
}

func (pg *postgres) command(name string, args ...string) *exec.Cmd {
	path := filepath.Join(pg.bin, name)
	if pg.root {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

func (pg *postgres) ctl(args ...string) error {
	all := append([]string{"-D", pg.data(), "-l", filepath.Join(pg.dir, "log"), "-w", "-t", "60"}, args...)
	out, err := pg.command("pg_ctl", all...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (pg *postgres) start() {
	pg.t.Helper()
	if err := pg.ctl("start", "-o", fmt.Sprintf("-p %d", pg.port)); err != nil {
		pg.t.Fatal(err)
	}
}

// stop stops the server at once: every connection is cut.
func (pg *postgres) stop() {
	pg.t.Helper()
	if err := pg.ctl("stop", "-m", "immediate"); err != nil {
		pg.t.Fatal(err)
	}
}

// restart restarts the server at once (crash recovery on the way up).
func (pg *postgres) restart() {
	pg.t.Helper()
	if err := pg.ctl("restart", "-m", "immediate"); err != nil {
		pg.t.Fatal(err)
	}
}

// redisServer is a private redis-server without persistence: a restart
// comes back empty.
type redisServer struct {
	t     *testing.T
	port  int
	cmd   *exec.Cmd
	extra []string // more redis-server arguments (--replicaof …)
}

func startRedis(t *testing.T, extra ...string) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server is not installed (make test installs it)")
	}
	r := &redisServer{t: t, port: freePort(t), extra: extra}
	r.start()
	t.Cleanup(r.kill)
	return r
}

func (r *redisServer) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

func (r *redisServer) start() {
	r.t.Helper()
	r.cmd = exec.Command("redis-server", append([]string{"--bind", "127.0.0.1", "--port", strconv.Itoa(r.port),
		"--save", "", "--appendonly", "no", "--dir", os.TempDir()}, r.extra...)...)
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", r.port)); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.t.Fatal("redis-server did not start")
}

func (r *redisServer) kill() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}

// restart kills the server and starts an empty one on the same port.
func (r *redisServer) restart() {
	r.kill()
	r.start()
}

// sentinelGroup is a Redis primary, one replica and three Sentinels
// (redis-server --sentinel, what Debian's redis-sentinel runs) watching
// them as master "passbatch", quick to fail over.
type sentinelGroup struct {
	t                *testing.T
	primary, replica *redisServer
	sentinels        []int
}

const sentinelMaster = "passbatch"

func startSentinels(t *testing.T) *sentinelGroup {
	t.Helper()
	g := &sentinelGroup{t: t}
	// No delay before the first full sync (Redis waits 5 s by default).
	g.primary = startRedis(t, "--repl-diskless-sync-delay", "0")
	g.replica = startRedis(t, "--replicaof", "127.0.0.1", strconv.Itoa(g.primary.port))
	dir := t.TempDir()
	for i := 0; i < 3; i++ {
		port := freePort(t)
		conf := filepath.Join(dir, fmt.Sprintf("sentinel-%d.conf", i))
		body := fmt.Sprintf("bind 127.0.0.1\nport %d\ndir %s\nsentinel monitor %s 127.0.0.1 %d 2\n"+
			"sentinel down-after-milliseconds %s 1000\nsentinel failover-timeout %s 5000\nsentinel parallel-syncs %s 1\n",
			port, dir, sentinelMaster, g.primary.port, sentinelMaster, sentinelMaster, sentinelMaster)
		if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("redis-server", conf, "--sentinel")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		g.sentinels = append(g.sentinels, port)
	}
	// Ready when the replica is in sync and every Sentinel knows the
	// master and its replica.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		ready := 0
		if out, err := exec.Command("redis-cli", "-p", strconv.Itoa(g.replica.port), "INFO", "replication").Output(); err == nil &&
			strings.Contains(string(out), "master_link_status:up") {
			ready++
		}
		for _, p := range g.sentinels {
			if n, err := sentinelReplicas(p); err == nil && n >= 1 {
				ready++
			}
		}
		if ready == len(g.sentinels)+1 {
			return g
		}
		if time.Now().After(deadline) {
			t.Fatal("the Sentinels did not see the primary and its replica in 20 s")
		}
	}
}

// URL is the processes' REDIS_URL: every Sentinel, and the master's name.
func (g *sentinelGroup) URL() string {
	var hosts []string
	for _, p := range g.sentinels {
		hosts = append(hosts, fmt.Sprintf("127.0.0.1:%d", p))
	}
	return "redis-sentinel://" + strings.Join(hosts, ",") + "?master=" + sentinelMaster
}

// master asks Sentinel p for the master's port.
func sentinelMasterPort(p int) (int, error) {
	out, err := exec.Command("redis-cli", "-p", strconv.Itoa(p), "SENTINEL", "get-master-addr-by-name", sentinelMaster).Output()
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return 0, fmt.Errorf("sentinel answered %q", out)
	}
	return strconv.Atoi(f[1])
}

func sentinelReplicas(p int) (int, error) {
	out, err := exec.Command("redis-cli", "-p", strconv.Itoa(p), "SENTINEL", "master", sentinelMaster).Output()
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(out))
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "num-slaves" {
			return strconv.Atoi(f[i+1])
		}
	}
	return 0, fmt.Errorf("no num-slaves in %q", out)
}

// killPrimary SIGKILLs the primary and waits until the Sentinels name the
// replica master; it returns how long that took.
func (g *sentinelGroup) killPrimary() time.Duration {
	g.t.Helper()
	start := time.Now()
	g.primary.kill()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if p, err := sentinelMasterPort(g.sentinels[0]); err == nil && p == g.replica.port {
			return time.Since(start)
		}
	}
	g.t.Fatal("the Sentinels did not promote the replica in 30 s")
	return 0
}

// proc is one of the project's processes.
type proc struct {
	name string
	log  string // its stdout and stderr
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// startProc runs binary bin named name with env; it is stopped when t ends.
func startProc(t *testing.T, name, bin string, env []string) *proc {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), env...)
	logf, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, log: logf.Name(), cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); logf.Close(); close(p.done) }()
	t.Cleanup(func() { p.stop(30 * time.Second) })
	return p
}

func (p *proc) signal(s syscall.Signal) { _ = p.cmd.Process.Signal(s) }

// stop sends SIGTERM (and SIGCONT, should it be frozen) and waits up to
// timeout before killing it; it reports how long the exit took.
func (p *proc) stop(timeout time.Duration) time.Duration {
	start := time.Now()
	select {
	case <-p.done:
		return 0
	default:
	}
	p.signal(syscall.SIGCONT)
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return time.Since(start)
}

// kill SIGKILLs the process and waits for it.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// exited reports whether the process ended, and with which error.
func (p *proc) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// buildBinaries builds the worker, scheduler and api into a temporary
// directory.
func buildBinaries(t *testing.T) (worker, scheduler, api string) {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("go", "build", "-o", dir+"/", "../cmd/worker", "../cmd/scheduler", "../cmd/api").CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return filepath.Join(dir, "worker"), filepath.Join(dir, "scheduler"), filepath.Join(dir, "api")
}

// ctxFor returns a context that ends when t does.
func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}

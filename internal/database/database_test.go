package database_test

import (
	"context"
	"net"
	"net/url"
	"strconv"
	"testing"

	"github.com/passbatch/passbatch/internal/database"
	"github.com/passbatch/passbatch/internal/testenv"
)

// TestSeveralHosts: a DATABASE_URL listing several hosts with
// target_session_attrs=read-write connects to the first one that is up and
// writable, so a client list of primary and standby survives a switch.
func TestSeveralHosts(t *testing.T) {
	t.Parallel()
	db := testenv.NewDB(t)
	u, err := url.Parse(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := l.Addr().String()
	realPort := u.Port()
	l.Close() // nothing listens there now
	u.Host = down + "," + u.Host
	q := u.Query()
	q.Set("target_session_attrs", "read-write")
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()
	ctx := context.Background()
	multi, err := database.Open(ctx, u.String(), database.Options{MaxOpenConns: 2})
	if err != nil {
		t.Fatalf("open %s (first host down): %v", u.Redacted(), err)
	}
	defer multi.Close()
	var port int
	var readOnly string
	if err := multi.NewRaw("SELECT inet_server_port(), current_setting('transaction_read_only')").Scan(ctx, &port, &readOnly); err != nil {
		t.Fatal(err)
	}
	if strconv.Itoa(port) != realPort || readOnly != "off" {
		t.Fatalf("connected to port %d (read_only=%s), want the second host's %s, writable", port, readOnly, realPort)
	}
	if _, err := multi.ExecContext(ctx, "CREATE TABLE several_hosts (id int)"); err != nil {
		t.Fatalf("write through the second host: %v", err)
	}
	// Every host down: a clear error, not a hang.
	u.Host = down
	if _, err := database.Open(ctx, u.String(), database.Options{}); err == nil {
		t.Fatal("open with every host down succeeded")
	}
}

package web

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// loginLimiter counts failed logins in Redis, shared by every replica: per
// client address and email (a guessed password), and per address alone,
// looser (many emails tried from one place). Counts live one minute from
// the first attempt; an attempt is counted before its password is checked
// and taken back when it was right. If Redis cannot be reached, logins are let through
// (and the failure logged): the limits protect passwords, not availability.
type loginLimiter struct {
	rdb            redis.UniversalClient
	perPair, perIP int64
	window         time.Duration
	log            *slog.Logger
}

func newLoginLimiter(rdb redis.UniversalClient, perPair, perIP int, log *slog.Logger) *loginLimiter {
	if perPair <= 0 {
		perPair = 10
	}
	if perIP <= 0 {
		perIP = 50
	}
	if log == nil {
		log = slog.Default()
	}
	return &loginLimiter{rdb: rdb, perPair: int64(perPair), perIP: int64(perIP), window: time.Minute, log: log}
}

func (l *loginLimiter) keys(ip, email string) (pair, addr string) {
	sum := sha256.Sum256([]byte(strings.ToLower(email)))
	return "passbatch:login:pair:" + ip + ":" + hex.EncodeToString(sum[:12]), "passbatch:login:ip:" + ip
}

// attempt counts a login attempt of email from ip before its password is
// checked, atomically (INCR), so parallel guesses cannot all pass a check
// made before any of them is counted. It returns how long ip must wait
// (0: go on) and, for a login that turns out right, a refund that takes
// the attempt back: the limits count failed logins.
func (l *loginLimiter) attempt(ctx context.Context, ip, email string) (wait time.Duration, refund func()) {
	refund = func() {}
	if l.rdb == nil {
		return 0, refund
	}
	pair, addr := l.keys(ip, email)
	pipe := l.rdb.TxPipeline()
	pc := pipe.Incr(ctx, pair)
	pipe.ExpireNX(ctx, pair, l.window)
	pt := pipe.PTTL(ctx, pair)
	ac := pipe.Incr(ctx, addr)
	pipe.ExpireNX(ctx, addr, l.window)
	at := pipe.PTTL(ctx, addr)
	if _, err := pipe.Exec(ctx); err != nil {
		l.log.WarnContext(ctx, "login limits unavailable; letting the login through", "err", err)
		return 0, refund
	}
	refund = func() {
		pipe := l.rdb.TxPipeline()
		pipe.Decr(ctx, pair)
		pipe.Decr(ctx, addr)
		if _, err := pipe.Exec(ctx); err != nil {
			l.log.WarnContext(ctx, "could not take back a successful login's count", "err", err)
		}
	}
	switch {
	case pc.Val() > l.perPair:
		return max(pt.Val(), time.Second), refund
	case ac.Val() > l.perIP:
		return max(at.Val(), time.Second), refund
	}
	return 0, refund
}

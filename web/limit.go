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
// the first failure. If Redis cannot be reached, logins are let through
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

// wait returns how long ip must wait before trying email again (0: now).
func (l *loginLimiter) wait(ctx context.Context, ip, email string) time.Duration {
	if l.rdb == nil {
		return 0
	}
	pair, addr := l.keys(ip, email)
	pipe := l.rdb.Pipeline()
	pc, pt := pipe.Get(ctx, pair), pipe.PTTL(ctx, pair)
	ac, at := pipe.Get(ctx, addr), pipe.PTTL(ctx, addr)
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		l.log.WarnContext(ctx, "login limits unavailable; letting the login through", "err", err)
		return 0
	}
	if n, _ := pc.Int64(); n >= l.perPair {
		return max(pt.Val(), time.Second)
	}
	if n, _ := ac.Int64(); n >= l.perIP {
		return max(at.Val(), time.Second)
	}
	return 0
}

// failed counts a failed login of email from ip.
func (l *loginLimiter) failed(ctx context.Context, ip, email string) {
	if l.rdb == nil {
		return
	}
	pair, addr := l.keys(ip, email)
	pipe := l.rdb.TxPipeline()
	pipe.Incr(ctx, pair)
	pipe.ExpireNX(ctx, pair, l.window)
	pipe.Incr(ctx, addr)
	pipe.ExpireNX(ctx, addr, l.window)
	if _, err := pipe.Exec(ctx); err != nil {
		l.log.WarnContext(ctx, "could not count a failed login", "err", err)
	}
}

# passbatch — see README.md. `make dev` runs the system, `make test` tests it.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
GO ?= go
export HTTP_ADDR ?= :8080

.PHONY: build services dev test chaos soak bench stop clean lint browser

build:
	$(GO) build -o bin/ ./cmd/...

services:
	scripts/services.sh start

# make dev serves plain HTTP on localhost: cookies without Secure. Its admin
# token is random per checkout (.data/secrets) and printed at start.
dev: build services
	source .data/env && export COOKIE_SECURE=false && bin/ptctl migrate && bin/ptctl seed --if-empty && exec scripts/run-dev.sh

# Headless Chromium and Korean fonts for the browser tests, headless
# LibreOffice Calc for the test that opens an export in it; a failed
# install only skips them.
browser:
	@{ command -v chromium >/dev/null && command -v soffice >/dev/null && [ -d /usr/share/fonts/opentype/noto ]; } || { [ "$$(id -u)" = 0 ] && \
		(apt-get -o DPkg::Lock::Timeout=600 update -qq && \
		 DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium fonts-noto-cjk >/dev/null && \
		 DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends libreoffice-calc-nogui >/dev/null) ; } || \
		echo "make: warning: chromium or LibreOffice is not installed; the tests that need them will be skipped"

test: services browser
	source .data/env && DATABASE_URL=$$TEST_DATABASE_URL REDIS_URL=$$TEST_REDIS_URL \
		$(GO) test -race -count=1 -timeout 45m ./...

# Every fault scenario over 200k bookings with real processes, a private
# Postgres cluster and redis-server; writes chaos/results.md (a few minutes).
chaos: services
	CHAOS_FULL=1 $(GO) test -count=1 -timeout 30m -run TestChaos -v ./chaos/

# The whole system (api, 3 workers, 2 schedulers, Postgres, Redis) under
# continuous work and a random fault every 30 s for SOAK_MINUTES (default
# 20), then every invariant; writes chaos/soak.md. make test runs 2 minutes.
soak: services
	SOAK_MINUTES=$${SOAK_MINUTES:-20} SOAK_REPORT=1 $(GO) test -count=1 -timeout 120m -run TestSoak -v ./chaos/

# wrk is the api load's independent generator; without it that column is
# left out (and said so in the results).
bench: build services
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq wrk >/dev/null 2>&1 || \
		{ apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq wrk >/dev/null; } ; } || \
		echo "make: warning: wrk is not installed; the bench leaves its api column out"
	source .data/env && bin/ptctl bench $(BENCH_ARGS)

stop:
	scripts/services.sh stop

clean:
	scripts/services.sh clean
	rm -rf bin

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -count=1 -run TestNoLongFunctions ./internal/funclen/

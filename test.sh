#!/usr/bin/env bash
# Set up everything the tests need on a fresh machine, then run every check and test:
# lint, types, import boundaries, the full suite on SQLite, and again on PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
ensure_env

# Debian's Chromium for the dashboard's browser tests (a test tool's own browser download fails here).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: installing Debian's chromium for the browser tests" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

# PostgreSQL at 127.0.0.1:5432 (trust auth on loopback) for the second pass: installed and started when missing.
source scripts/postgres.sh
ensure_postgres

run() { echo "+ $*" >&2; "$@"; }
run "${UV[@]}" run --frozen ruff check src tests bench
run "${UV[@]}" run --frozen mypy
run "${UV[@]}" run --frozen lint-imports
# The Go engine worker: vet, formatting (gofmt -l must list nothing) and its own tests.
GO="$(python3 scripts/build_worker.py --go)"
( cd engine-worker && export GOTOOLCHAIN=local PATH="$(dirname "$GO"):$PATH" CGO_ENABLED=0 \
    && run "$GO" vet ./... \
    && unformatted="$("$(dirname "$GO")/gofmt" -l .)" && { [ -z "$unformatted" ] || { echo "gofmt: $unformatted" >&2; exit 1; }; } \
    && run "$GO" test -count=1 ./... )
echo "== tests on SQLite ==" >&2
run "${UV[@]}" run --frozen pytest "$@"
echo "== tests on PostgreSQL ==" >&2
if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    LEADMASTER_TEST_DB=postgres run "${UV[@]}" run --frozen pytest "$@"
else
    echo "test.sh: PostgreSQL is not reachable at 127.0.0.1:5432; the PostgreSQL pass cannot run" >&2
    exit 1
fi

#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the labelling-service storage tests (tests/test_label_store.py).
# Source it: installs Debian's `postgresql` if missing, starts a cluster on a unix socket in a temporary
# folder (no TCP), creates database realbogus_test and exports REALBOGUS_TEST_POSTGRES_URL.
# Run by hand: `source .ci/postgres.sh`; `realbogus_pg_stop` stops it (also on the shell's exit).
# Used by .ci/run; the storage tests fail in CI (CI=true) when the URL is unset.

realbogus_pg_start() {
    local bin
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
            || { echo "postgres.sh: installing postgresql failed" >&2; return 1; }
        bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    fi
    REALBOGUS_PG_DIR=$(mktemp -d -t realbogus-pg.XXXXXX)
    local run=()
    if [ "$(id -u)" = 0 ]; then
        chown postgres: "$REALBOGUS_PG_DIR"
        run=(runuser -u postgres --)
    fi
    "${run[@]}" "$bin/initdb" -D "$REALBOGUS_PG_DIR/data" -U postgres -A trust --no-sync >/dev/null \
        || { echo "postgres.sh: initdb failed" >&2; return 1; }
    "${run[@]}" "$bin/pg_ctl" -D "$REALBOGUS_PG_DIR/data" -l "$REALBOGUS_PG_DIR/log" -w \
        -o "-c listen_addresses='' -k $REALBOGUS_PG_DIR -c fsync=off" start >/dev/null \
        || { echo "postgres.sh: pg_ctl start failed; see $REALBOGUS_PG_DIR/log" >&2; return 1; }
    "${run[@]}" "$bin/createdb" -h "$REALBOGUS_PG_DIR" -U postgres realbogus_test \
        || { echo "postgres.sh: createdb failed" >&2; return 1; }
    REALBOGUS_PG_BIN=$bin
    export REALBOGUS_PG_DIR REALBOGUS_PG_BIN
    export REALBOGUS_TEST_POSTGRES_URL="postgresql://postgres@/realbogus_test?host=$REALBOGUS_PG_DIR"
    echo "postgres.sh: REALBOGUS_TEST_POSTGRES_URL=$REALBOGUS_TEST_POSTGRES_URL"
}

realbogus_pg_stop() {
    if [ -n "${REALBOGUS_PG_DIR:-}" ] && [ -d "$REALBOGUS_PG_DIR/data" ]; then
        local run=()
        [ "$(id -u)" = 0 ] && run=(runuser -u postgres --)
        "${run[@]}" "$REALBOGUS_PG_BIN/pg_ctl" -D "$REALBOGUS_PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$REALBOGUS_PG_DIR"
    fi
}

realbogus_pg_start && trap realbogus_pg_stop EXIT

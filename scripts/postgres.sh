# Sourced by test.sh: make a PostgreSQL server answer at 127.0.0.1:5432 with trust auth for local tests.
# Installs Debian's package when missing, opens trust auth on loopback only, and starts the cluster.
# Needs root and apt-get (as on CI); elsewhere it only says what is missing.

ensure_postgres() {
    if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
        return 0
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "postgres.sh: PostgreSQL is not running at 127.0.0.1:5432 and this is not root; start one with trust auth" >&2
        return 1
    fi
    if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
        echo "postgres.sh: installing Debian's postgresql" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
    local v conf hba
    for v in $(ls /etc/postgresql); do
        conf=/etc/postgresql/$v/main
        hba=$conf/pg_hba.conf
        # Trust only on loopback, for the test databases; put first so it wins over the packaged lines.
        if ! grep -q '^# leadmaster-tests' "$hba"; then
            local tmp
            tmp=$(mktemp)
            {
                echo '# leadmaster-tests: trust on loopback for the test suite'
                echo 'host all all 127.0.0.1/32 trust'
                echo 'host all all ::1/128 trust'
                cat "$hba"
            } >"$tmp"
            cat "$tmp" >"$hba"
            rm -f "$tmp"
        fi
        # The cluster tests run several nodes and hubs at once on one server.
        if ! grep -q '^max_connections = 300' "$conf/postgresql.conf"; then
            echo 'max_connections = 300' >>"$conf/postgresql.conf"
        fi
        pg_ctlcluster --skip-systemctl-redirect "$v" main restart 2>/dev/null \
            || pg_ctlcluster --skip-systemctl-redirect "$v" main start
    done
    local i
    for i in $(seq 1 30); do
        pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && return 0
        sleep 1
    done
    echo "postgres.sh: PostgreSQL did not come up at 127.0.0.1:5432" >&2
    return 1
}

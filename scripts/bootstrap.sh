# Sourced by run.sh and test.sh: make `uv` available and the locked environment installed.
# Needs only python3 (3.11 or 3.12) and access to PyPI.

ensure_uv() {
    if command -v uv >/dev/null 2>&1; then
        UV=(uv)
        return
    fi
    if ! python3 -m uv --version >/dev/null 2>&1; then
        echo "bootstrap: uv not found; installing it from PyPI with pip" >&2
        python3 -m pip install --quiet uv 2>/dev/null \
            || python3 -m pip install --quiet --user uv 2>/dev/null \
            || python3 -m pip install --quiet --break-system-packages uv
    fi
    UV=(python3 -m uv)
}

ensure_env() {
    ensure_uv
    # --frozen: install exactly what uv.lock says; never re-resolve on a user's machine.
    "${UV[@]}" sync --frozen --quiet "$@"
    # The Go engine worker (engine-worker/): rebuilt into .build/ only when its sources changed.
    python3 scripts/build_worker.py >/dev/null
}

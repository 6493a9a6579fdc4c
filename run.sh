#!/usr/bin/env bash
# Set up (uv, locked dependencies) and run the whole system: session-manager on :3001 (real WhatsApp
# engine unless SESSION_MANAGER_ENGINE=sandbox) and central-hub with its dashboard on :3000. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
ensure_env --no-dev
exec "${UV[@]}" run --frozen --no-dev leadmaster "$@"

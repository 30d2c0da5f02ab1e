# Sourced (not run) by scripts/test, scripts/demo and .ci/run: install what a fresh Debian 12 machine lacks.
#
# Idempotent: nothing is installed when it is already there. System packages come from apt-get (as root, or
# through sudo when not root). Python packages go into the active virtualenv, else into python3's own
# site-packages when pip may write there, else into ./.venv (Debian's python3 is "externally managed", PEP 668),
# which is then put first on PATH so that `python3` below means that environment.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_DIR="${VENV_DIR:-$REPO_ROOT/.venv}"

log() { printf '==> %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        log "need root to run: $* (no sudo available)"
        return 1
    fi
}

apt_install() {
    [ "$#" -gt 0 ] || return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        log "missing: $*; install them with your system's package manager"
        return 1
    fi
    log "installing with apt-get: $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# True when pip must not write to python3's own site-packages (PEP 668 marker, and not inside a venv).
python_externally_managed() {
    python3 - <<'PY'
import os, sys, sysconfig
marker = os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")
sys.exit(0 if sys.prefix == sys.base_prefix and os.path.exists(marker) else 1)
PY
}

use_venv() { [ -z "${VIRTUAL_ENV:-}" ] && { [ -x "$VENV_DIR/bin/python3" ] || ! command -v python3 >/dev/null 2>&1 || python_externally_managed; }; }

# ffmpeg/ffprobe, python3 (>= 3.11) and whatever is needed to pip-install into it; plus, unless called as
# `ensure_system_deps serve` (scripts/demo: only what serving needs), the tools the tests drive.
ensure_system_deps() {
    local pkgs=() edges=() mode="${1:-test}"
    if ! command -v ffmpeg >/dev/null 2>&1 || ! command -v ffprobe >/dev/null 2>&1; then
        pkgs+=(ffmpeg)
    fi
    if [ "$mode" = test ]; then
    # The Redis L2 cache tests start a real redis-server (tests/integration/test_redis_cache.py).
    command -v redis-server >/dev/null 2>&1 || pkgs+=(redis-server)
    # The load test drives a real server with wrk (tests/load/test_load.py).
    command -v wrk >/dev/null 2>&1 || pkgs+=(wrk)
    # The player tests drive hls.js, dash.js and Shaka in Debian's Chromium (tests/players; never a downloaded
    # browser) from Node.js with playwright-core.
    [ -x /usr/bin/chromium ] || pkgs+=(chromium)
    command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
    command -v npm >/dev/null 2>&1 || pkgs+=(npm)
    # MPDs are validated against the DASH schema with xmllint (tests/integration/test_mpd_schema.py).
    command -v xmllint >/dev/null 2>&1 || pkgs+=(libxml2-utils)
    # Relay captures are checked with mkvmerge -J (tests/relay_media.py); mpv and VLC play a relay viewer URL
    # headless (tests/players/test_relay_players.py).
    command -v mkvmerge >/dev/null 2>&1 || pkgs+=(mkvtoolnix)
    command -v mpv >/dev/null 2>&1 || pkgs+=(mpv)
    command -v cvlc >/dev/null 2>&1 || pkgs+=(vlc-bin vlc-plugin-base)
    # tests/edges/ start real CDN edges from docs/edges/: Apache Traffic Server, Varnish and nginx (with its
    # proxy_cache and slice modules, in nginx-light). Their Debian services are not wanted: stopped below.
    [ -x /usr/bin/traffic_server ] || edges+=(trafficserver)
    [ -x /usr/sbin/varnishd ] || edges+=(varnish)
    [ -x /usr/sbin/nginx ] || edges+=(nginx-light)
    pkgs+=("${edges[@]}")
    fi  # test tools
    if ! command -v python3 >/dev/null 2>&1; then
        pkgs+=(python3 python3-venv python3-pip)
    elif use_venv; then
        [ -x "$VENV_DIR/bin/python3" ] || python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || pkgs+=(python3-venv)
    else
        python3 -m pip --version >/dev/null 2>&1 || pkgs+=(python3-pip)
    fi
    apt_install "${pkgs[@]}"
    if [ "${#edges[@]}" -gt 0 ] && command -v systemctl >/dev/null 2>&1; then
        # The packages start their services (ATS on 8080, Varnish on 6081, nginx on 80); the tests run their own.
        as_root systemctl disable --now trafficserver varnish nginx >/dev/null 2>&1 || true
    fi
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
        log "python3 >= 3.11 is required, found $(python3 --version 2>&1)"
        return 1
    }
}

ensure_python_env() {
    if use_venv; then
        if [ ! -x "$VENV_DIR/bin/python3" ]; then
            log "creating virtualenv $VENV_DIR"
            python3 -m venv "$VENV_DIR"
        fi
        export VIRTUAL_ENV="$VENV_DIR"
        export PATH="$VENV_DIR/bin:$PATH"
        hash -r
    fi
    export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
}

# tests/players/node_modules from its package-lock.json (`npm ci`), only when it is missing or older than the lock
# file (npm records what it installed in node_modules/.package-lock.json). Nothing is downloaded when up to date.
ensure_player_deps() {
    local dir="$REPO_ROOT/tests/players"
    node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' || {
        log "node >= 20 is required by tests/players (playwright-core), found $(node --version 2>&1)"
        return 1
    }
    if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ] \
        || [ "$dir/package.json" -nt "$dir/node_modules/.package-lock.json" ]; then
        log "installing the player test packages: npm ci --prefix tests/players"
        npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
    fi
}

print_versions() {
    log "$(python3 --version 2>&1) at $(command -v python3); $(ffmpeg -version 2>/dev/null | head -n 1)"
}

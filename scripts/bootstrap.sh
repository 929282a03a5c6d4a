#!/usr/bin/env bash
# Create .venv and install wmbus-sdr with its dev tools. Called by `make`; safe to re-run.
# System packages are installed only when missing: as root with apt-get, otherwise the exact
# command is printed and the script stops.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

need_apt=()
if ! command -v "$PYTHON" >/dev/null 2>&1; then
    need_apt+=(python3 python3-venv python3-pip)
elif ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "bootstrap: $PYTHON is $("$PYTHON" --version 2>&1); wmbus-sdr needs Python >= 3.11" >&2
    exit 1
elif ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    need_apt+=(python3-venv python3-pip)
fi

apt_install() {
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "bootstrap: installing Debian packages: $*" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "$@"
    else
        echo "bootstrap: missing system packages. Run:" >&2
        echo "    sudo apt-get install -y $*" >&2
        exit 1
    fi
}

if [ ${#need_apt[@]} -gt 0 ]; then
    apt_install "${need_apt[@]}"
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "bootstrap: creating $VENV" >&2
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >&2
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[dev]' >&2
# the editable install leaves our modules uncompiled; where PYTHONDONTWRITEBYTECODE is set, every
# command would compile them again (~0.1 s of each start-up): compile them once, as pip does for a
# regular install (Python recompiles a module whose source changed since)
"$VENV/bin/python" -m compileall -q mbus dsp sdr flowgraphs >/dev/null
echo "bootstrap: $VENV ready" >&2

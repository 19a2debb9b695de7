#!/usr/bin/env bash
# Set up a fresh Debian 12 machine for the matrix: system packages, the Python
# tools, a Docker engine (started when none answers) and the offline
# PostgreSQL/PostGIS images. Idempotent: what is already there is kept.
#
# Environment:
#   MATRIX_SKIP_DOCKER=1     do not install or start Docker (native provider only)
#   MATRIX_SKIP_IMAGES=1     do not build the offline images
#   MATRIX_DEBIAN_MIRROR     mirror for debootstrap (default: debootstrap's own)
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# libldap2-dev and libsasl2-dev build python-ldap, which peek-core-user (a plugin
# of the real-plugin corpus test) declares and PyPI ships only as an sdist.
packages=(postgresql-15 postgresql-15-postgis-3 rsync chromium libldap2-dev libsasl2-dev)
[ "${MATRIX_SKIP_DOCKER:-0}" = 1 ] || packages+=(docker.io debootstrap)
# A bare Debian 12 has neither pip for its python3 nor npm (for gitlab-ci-local).
python3 -m pip --version >/dev/null 2>&1 || packages+=(python3-pip python3-venv)
command -v gitlab-ci-local >/dev/null || command -v npm >/dev/null || packages+=(npm)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi

# Debian's own python3 refuses installs outside a virtual environment (PEP 668);
# nox and uv are command-line tools, installed there with --break-system-packages.
python3 -m pip install -q --disable-pip-version-check nox uv 2>/dev/null \
    || python3 -m pip install -q --disable-pip-version-check --break-system-packages nox uv
# Runs .gitlab-ci.yml locally (its newer releases need Node 22).
command -v gitlab-ci-local >/dev/null || npm install -g --silent gitlab-ci-local@4.64.1

if [ "${MATRIX_SKIP_DOCKER:-0}" != 1 ]; then
    if ! docker info >/dev/null 2>&1; then
        echo "setup: starting dockerd (no bridge: containers use host networking)"
        $SUDO sh -c 'nohup dockerd --bridge=none --iptables=false --ip-masq=false \
            >/var/log/matrix-dockerd.log 2>&1 &'
        for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
        docker info >/dev/null 2>&1 || { echo "setup: dockerd did not start; see /var/log/matrix-dockerd.log" >&2; exit 1; }
    fi
    if [ "${MATRIX_SKIP_IMAGES:-0}" != 1 ]; then
        nox -s images
    fi
fi

#!/usr/bin/env bash
# Run the release pipeline's jobs on this machine with gitlab-ci-local, the way
# GitLab would chain them (each job in its own copy of the repository, artifacts
# passed on), but in shell mode: no Docker engine and no service containers.
#
#   scripts/gitlab-ci-local.sh [TARGET...]     (default: pg15-postgis33)
#
# Runs lint, build, the test job of each TARGET, then report; their artifacts
# (dist/, reports/) are copied back into the work tree, so that the gate can be
# run on them. gitlab-ci-local copies only the files git tracks into each job:
# commit (or `git add`) new files first.
#
# Environment:
#   MATRIX_POSTGRESQL_URL, MATRIX_MSSQL_URL   servers for the external provider;
#                                             without MATRIX_POSTGRESQL_URL the
#                                             native provider starts PostgreSQL
#   UV_CACHE_DIR                              package cache (default ~/.cache/uv)
#   GITLAB_CI_LOCAL                           the gitlab-ci-local command
set -euo pipefail
cd "$(dirname "$0")/.."

# Shell jobs inherit this environment: keep the caller's virtual environment
# (nox sets UV_PYTHON to its own) out of them, as a runner would.
unset VIRTUAL_ENV UV_PYTHON UV_PROJECT_ENVIRONMENT

gcl=${GITLAB_CI_LOCAL:-gitlab-ci-local}
command -v "$gcl" >/dev/null || {
    echo "gitlab-ci-local is not installed: npm install -g gitlab-ci-local@4.64.1" >&2
    exit 2
}
targets=("${@:-pg15-postgis33}")

options=(
    --force-shell-executor --shell-isolation
    --variable DB_IMAGE=
    --variable "UV_CACHE_DIR=${UV_CACHE_DIR:-$HOME/.cache/uv}"
    --variable "PIP_CACHE_DIR=${PIP_CACHE_DIR:-$HOME/.cache/pip}"
)
for name in MATRIX_POSTGRESQL_URL MATRIX_MSSQL_URL; do
    [ -z "${!name:-}" ] || options+=(--variable "$name=${!name}")
done
[ -n "${MATRIX_POSTGRESQL_URL:-}" ] || options+=(--variable MATRIX_PROVIDER=native)

jobs=(lint build)
listing=$("$gcl" --list-csv 2>/dev/null)
for target in "${targets[@]}"; do
    job=$(grep -o "^test:[^;]*\[${target},[^]]*\]" <<<"$listing" | head -n 1 || true)
    [ -n "$job" ] || { echo "no test job for target $target in .gitlab-ci.yml" >&2; exit 2; }
    jobs+=("$job")
done
jobs+=(report)

# Artifacts of earlier local runs would be merged into this run's report.
rm -rf .gitlab-ci-local/artifacts
for job in "${jobs[@]}"; do
    echo "== $job"
    "$gcl" "${options[@]}" "$job"
done

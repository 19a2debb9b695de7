#!/bin/bash
# Entrypoint of peek-matrix/babelfish (scripts/babelfish/build.py builds the image;
# docs/babelfish.md, "The image's contract").
# Contract: BABELFISH_PASSWORD (required) becomes the password of the T-SQL login
# babelfish_admin; BABELFISH_TDS_PORT (default 1433) is the TDS port; the command
# `postgres -c name=value ...` passes settings (the harness passes
# listen_addresses=127.0.0.1 on the host network).
# The cluster was initialised at build time (multi-db, database master/babelfish_db).
# Babelfish 4.2's TDS listener binds PostgreSQL's own listen_addresses (its
# babelfishpg_tds.listen_addresses is ignored), so PostgreSQL listens there too, on
# BABELFISH_PG_PORT or else the first port above the TDS port that nothing answers on
# (on the host network 5432 may be the host's own PostgreSQL).
set -Eeuo pipefail
export PATH=/opt/babelfish/bin:$PATH PGDATA=${PGDATA:-/var/lib/babelfish/data}
if [ "$#" -eq 0 ] || [ "${1:0:1}" = '-' ]; then set -- postgres "$@"; fi
if [ "$1" != 'postgres' ]; then exec "$@"; fi
if [ "$(id -u)" = '0' ]; then
	mkdir -p /run/postgresql && chown postgres:postgres /run/postgresql
	exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
fi
if [ -z "${BABELFISH_PASSWORD:-}" ]; then
	echo 'BABELFISH_PASSWORD must be set: TDS logins need a password.' >&2
	exit 1
fi
escaped=${BABELFISH_PASSWORD//\'/\'\'}
echo "ALTER ROLE babelfish_admin PASSWORD '$escaped'" | timeout 120 postgres --single -D "$PGDATA" -c listen_addresses= babelfish_db >/dev/null
shift
tds_port=${BABELFISH_TDS_PORT:-1433}
pg_port=${BABELFISH_PG_PORT:-}
if [ -z "$pg_port" ]; then
	for candidate in $(seq $((tds_port + 1)) $((tds_port + 100))); do
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
			pg_port=$candidate
			break
		fi
	done
fi
echo "TDS port ${tds_port}; PostgreSQL port ${pg_port}"
# The command's own -c settings come last and win (listen_addresses=127.0.0.1 on the host network).
exec postgres -D "$PGDATA" -c 'listen_addresses=*' -c "port=$pg_port" \
	-c "babelfishpg_tds.port=$tds_port" "$@"

#!/bin/bash
# Entrypoint of the offline PostGIS images (matrix/images.py).
#
# Honours the environment contract of the upstream postgis/postgis image so
# that the docker provider treats both alike: POSTGRES_USER, POSTGRES_PASSWORD
# (password login over TCP), POSTGRES_DB, PGDATA, PGPORT, and
# `postgres -c name=value ...` as the command.
set -Eeuo pipefail

if [ "$#" -eq 0 ] || [ "${1:0:1}" = '-' ]; then
	set -- postgres "$@"
fi

if [ "$1" != 'postgres' ]; then
	exec "$@"
fi

: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
export POSTGRES_USER POSTGRES_DB

if [ "$(id -u)" = '0' ]; then
	# The server refuses to run as root: prepare the directories it writes,
	# then start this script again as the postgres user.
	mkdir -p "$PGDATA" /run/postgresql
	chown postgres:postgres "$PGDATA" /run/postgresql
	chmod 0700 "$PGDATA"
	exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	if [ -z "${POSTGRES_PASSWORD:-}" ]; then
		echo 'POSTGRES_PASSWORD must be set: TCP logins need a password.' >&2
		exit 1
	fi
	# minbase has no locales package; C.UTF-8 is built into libc.
	initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
		--auth-local=trust --auth-host=scram-sha-256 \
		--locale=C.UTF-8 --encoding=UTF8
	# Clients arrive from the Docker bridge gateway, not only from loopback.
	echo 'host all all all scram-sha-256' >>"$PGDATA/pg_hba.conf"
	echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
	if [ "$POSTGRES_DB" != 'postgres' ]; then
		# Single-user mode creates the database without opening a port.
		echo "CREATE DATABASE \"$POSTGRES_DB\"" | postgres --single -D "$PGDATA" postgres >/dev/null
	fi
	echo 'Database initialised; starting the server.'
fi

exec "$@"

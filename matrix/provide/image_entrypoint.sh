#!/bin/bash
# Entrypoint of the offline PostGIS images (matrix/images.py).
#
# Honours the environment contract of the upstream postgis/postgis image so
# that the docker provider treats both alike: POSTGRES_USER, POSTGRES_PASSWORD
# (password login over TCP), POSTGRES_DB, PGDATA, PGPORT, and
# `postgres -c name=value ...` as the command.
#
# The image also holds a cluster initialised when it was built (`matrix-prebuild`,
# run once by matrix/provide/images.py): PostGIS in template1, the harness's user
# and database. A container started with PEEK_MATRIX_CLUSTER=prebuilt and that user and
# database runs on it and only sets its password, instead of running initdb;
# any other container (the upstream contract) initialises its own cluster.
set -Eeuo pipefail

PREBUILT=/var/lib/postgresql/prebuilt

if [ "$#" -eq 0 ] || [ "${1:0:1}" = '-' ]; then
	set -- postgres "$@"
fi

if [ "$1" != 'postgres' ] && [ "$1" != 'matrix-prebuild' ]; then
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

initialise() { # the data folder, its user and its access rules, as the upstream image makes them
	initdb --username="$POSTGRES_USER" "$@" \
		--auth-local=trust --auth-host=scram-sha-256 \
		--locale=C.UTF-8 --encoding=UTF8
	# Clients arrive from the Docker bridge gateway, not only from loopback.
	echo 'host all all all scram-sha-256' >>"$PGDATA/pg_hba.conf"
	echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
}

single() { # statements on standard input, run in single-user mode: no port is opened
	# Not exit_on_error: PostGIS's own script raises and catches errors (its pgaudit probe),
	# which that setting would make fatal. What must have happened is checked instead.
	postgres --single -D "$PGDATA" "$1"
}

if [ "$1" = 'matrix-prebuild' ]; then # matrix-prebuild USER DATABASE
	POSTGRES_USER=$2 POSTGRES_DB=$3
	# No sync: the image layer committed from this container is the copy that lasts.
	PGDATA=$PREBUILT initialise --no-sync
	echo 'CREATE EXTENSION postgis' | PGDATA=$PREBUILT single template1 >/dev/null
	echo "CREATE DATABASE \"$POSTGRES_DB\"" | PGDATA=$PREBUILT single postgres >/dev/null
	# Single-user mode exits 0 after an ERROR: the result is read back instead.
	found=$(echo "SELECT extversion FROM pg_extension WHERE extname = 'postgis'" \
		| PGDATA=$PREBUILT single "$POSTGRES_DB")
	case "$found" in
	*'extversion = "'*) ;;
	*)
		echo "matrix-prebuild: PostGIS is not in the prebuilt cluster's $POSTGRES_DB" >&2
		exit 1
		;;
	esac
	echo "$POSTGRES_USER $POSTGRES_DB" >"$PREBUILT/matrix-prebuilt"
	exit 0
fi

if [ ! -s "$PGDATA/PG_VERSION" ] && [ "${PEEK_MATRIX_CLUSTER:-}" = 'prebuilt' ] \
	&& [ "$(cat "$PREBUILT/matrix-prebuilt" 2>/dev/null)" = "$POSTGRES_USER $POSTGRES_DB" ]; then
	if [ -z "${POSTGRES_PASSWORD:-}" ]; then
		echo 'POSTGRES_PASSWORD must be set: TCP logins need a password.' >&2
		exit 1
	fi
	export PGDATA=$PREBUILT
	# A literal in single quotes: a quote in the password is doubled.
	echo "ALTER ROLE \"$POSTGRES_USER\" PASSWORD '${POSTGRES_PASSWORD//\'/\'\'}'" | single postgres >/dev/null
	echo 'Prebuilt cluster: password set; starting the server.'
elif [ ! -s "$PGDATA/PG_VERSION" ]; then
	if [ -z "${POSTGRES_PASSWORD:-}" ]; then
		echo 'POSTGRES_PASSWORD must be set: TCP logins need a password.' >&2
		exit 1
	fi
	# minbase has no locales package; C.UTF-8 is built into libc.
	initialise --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD")
	if [ "$POSTGRES_DB" != 'postgres' ]; then
		echo "CREATE DATABASE \"$POSTGRES_DB\"" | single postgres >/dev/null
	fi
	echo 'Database initialised; starting the server.'
fi

exec "$@"

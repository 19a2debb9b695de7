#!/bin/bash
# Runs once, at image build time, as postgres (image-in-container.sh): initialises
# the cluster with Babelfish in multi-db migration mode, the way Babelfish's
# documentation sets a server up, with the login babelfish_admin (its password
# is a placeholder the entrypoint replaces at every start).
set -euo pipefail
export PATH=/opt/babelfish/bin:$PATH PGDATA=/var/lib/babelfish/data
# TDS logins accept the password and md5 pg_hba methods only, not scram-sha-256
# (babelfishpg_tds/src/backend/tds/tdslogin.c): md5 for host connections.
initdb --username=postgres --auth-local=trust --auth-host=md5 --locale=C.UTF-8 --encoding=UTF8
cat >>"$PGDATA/postgresql.conf" <<CONF
shared_preload_libraries = 'babelfishpg_tds'
listen_addresses = ''
babelfishpg_tds.listen_addresses = '*'
max_connections = 200
CONF
echo 'host all all all md5' >>"$PGDATA/pg_hba.conf"
# Unix socket only while initialising; the TDS port is moved off 1433 so that
# nothing outside could ever log in to the half-made server.
pg_ctl -w -t 300 -D "$PGDATA" -o "-c listen_addresses= -c babelfishpg_tds.port=14330" \
	-l /tmp/init.log start
# multi-db: CREATE DATABASE in T-SQL makes a database (single-db refuses a second one).
timeout 900 psql -v ON_ERROR_STOP=1 -d postgres -q <<SQL
CREATE USER babelfish_admin WITH SUPERUSER CREATEDB CREATEROLE PASSWORD 'placeholder' INHERIT;
CREATE DATABASE babelfish_db OWNER babelfish_admin;
\c babelfish_db
CREATE EXTENSION IF NOT EXISTS "babelfishpg_tds" CASCADE;
GRANT ALL ON SCHEMA sys to babelfish_admin;
ALTER SYSTEM SET babelfishpg_tsql.database_name = 'babelfish_db';
ALTER SYSTEM SET babelfishpg_tsql.migration_mode = 'multi-db';
SELECT pg_reload_conf();
CALL sys.initialize_babelfish('babelfish_admin');
SQL
pg_ctl -w -t 120 -D "$PGDATA" stop
tail -n 5 /tmp/init.log
rm -f /tmp/init.log

"""Throwaway databases on a real PostgreSQL: created, cloned, set and dropped as a check
process needs them, several in one admin session."""

from __future__ import annotations

import sqlalchemy as sa

from matrix.provide import databases


def _existing(server, names: list[str]) -> dict[str, list[str]]:
    """Each of ``names`` that exists, with the settings its database carries."""
    engine = databases.connect_engine(server)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT d.datname, s.setconfig FROM pg_database d LEFT JOIN "
                    "pg_db_role_setting s ON s.setdatabase = d.oid AND s.setrole = 0 "
                    "WHERE d.datname = ANY(:names)"
                ),
                {"names": names},
            ).all()
    finally:
        engine.dispose()
    return {row.datname: sorted(row.setconfig or []) for row in rows}


def test_siblings_are_clones_with_the_timeouts_and_go_in_one_call(postgres_url, pg_server_url):
    names = [f"{postgres_url.database}_{purpose}" for purpose in ("fresh", "data")]

    urls = databases.create_siblings(
        postgres_url, names, template=postgres_url.database, statement_timeout_s=7, lock_timeout_s=3
    )
    created = _existing(pg_server_url, names)
    engine = databases.connect_engine(urls[1])
    try:
        with engine.connect() as conn:  # a clone of the prepared database: PostGIS is there
            postgis = conn.execute(
                sa.text("SELECT count(*) FROM pg_extension WHERE extname = 'postgis'")
            ).scalar_one()
    finally:
        engine.dispose()
    databases.drop_databases(postgres_url, names)

    assert [u.database for u in urls] == names
    assert created == dict.fromkeys(names, ["lock_timeout=3000", "statement_timeout=7000"])
    assert postgis == 1
    assert _existing(pg_server_url, names) == {}

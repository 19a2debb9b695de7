#!/bin/bash
# Builds Babelfish for PostgreSQL 4.2.0 inside the toolchain container that
# scripts/babelfish/build.py starts: Debian 12 (bookworm) with the build
# packages already laid out by debootstrap, no network (--network none).
#
# Mounts: /src (read-only) the sources as MATRIX_BABELFISH_SOURCES holds them,
# /out (writable) where the finished /opt/babelfish is copied.
# Every step's output goes to stdout (build.py keeps it in a log); the lines
# starting with "### " name the steps and are what the console shows.
set -euo pipefail
export LANG=C.UTF-8
PREFIX=/opt/babelfish
JOBS=$(nproc)
WORK=/tmp/build
step() { echo "### $(date +%s) $*"; }

mkdir -p "$WORK"

step "ANTLR 4.9.3 C++ runtime"
# Babelfish 4.x generates its T-SQL parser with the antlr-4.9.3-complete.jar it
# ships, and the generated code needs the runtime of the very same version:
# Debian's libantlr4-runtime-dev is 4.9 (bookworm) or 4.10 (trixie), neither
# matches. Debian's libutfcpp-dev stands in for the copy CMake would clone.
cp -a /src/antlr4/runtime/Cpp "$WORK/antlr"
mkdir "$WORK/antlr/build"
cd "$WORK/antlr/build"
cmake .. -DCMAKE_INSTALL_PREFIX=/usr/local -DWITH_DEMO=False -DCMAKE_BUILD_TYPE=Release
make -j"$JOBS"
make install

step "PostgreSQL 16.3 modified for Babelfish"
cp -a /src/pg "$WORK/pg"
cd "$WORK/pg"
# The flags Babelfish's build documentation gives: libxml, ossp uuid (for
# uuid-ossp, which babelfishpg_common needs), ICU (T-SQL collations), OpenSSL.
./configure --prefix="$PREFIX" CFLAGS="-O2" --with-libxml --with-uuid=ossp --with-icu --with-openssl
make -j"$JOBS"
make install
make -C contrib -j"$JOBS"
make -C contrib install

step "PostGIS 3.5.2"
# bookworm's PostGIS 3.3.2 predates PostgreSQL 16; trixie's 3.5.2 source builds
# against bookworm's GEOS and PROJ. Babelfish's geometry/geography call into its
# postgis-3 library; raster, topology and protobuf are not needed.
mkdir "$WORK/postgis"
tar -C "$WORK/postgis" --strip-components=1 -xJf /src/postgis/postgis_3.5.2+dfsg.orig.tar.xz
cd "$WORK/postgis"
./configure --with-pgconfig="$PREFIX/bin/pg_config" --without-protobuf --without-raster \
	--without-gui --without-topology
make -j"$JOBS"
make install

step "Babelfish extensions 4.2.0"
cp -a /src/ext "$WORK/ext"
cd "$WORK/ext/contrib"
# The extensions' Makefiles find PostgreSQL through PG_CONFIG and its source tree
# through PG_SRC; babelfishpg_tsql runs CMake as $(cmake).
export PG_CONFIG="$PREFIX/bin/pg_config" PG_SRC="$WORK/pg" cmake="$(command -v cmake)"
# Spatial types on (babelfishpg_common and babelfishpg_tsql): the tutorial plugin
# and Peek's own models use geometry.
SPATIAL='-DENABLE_SPATIAL_TYPES'
make -C babelfishpg_money -j"$JOBS"
make -C babelfishpg_money install
PG_CPPFLAGS=$SPATIAL make -C babelfishpg_common -j"$JOBS"
PG_CPPFLAGS=$SPATIAL make -C babelfishpg_common install
make -C babelfishpg_tds -j"$JOBS"
make -C babelfishpg_tds install
# GCC 12 (bookworm) on a tree Babelfish's CI builds with Ubuntu 20.04's GCC 9:
# -fcommon, because several files define the same globals (pl_comp.c and
# pl_comp-2.c, parser.c and gram-backend.c), which GCC 10 and later refuse to
# link; and one maybe-uninitialized in src/procedures.c that the Makefile's
# -Werror would make fatal.
GCC12='-Wno-error=maybe-uninitialized -fcommon'
# From a clean tree, make -j races: C++ sources include the ANTLR-generated
# lexer header before the library that generates it is built. That library first.
PG_CPPFLAGS=$SPATIAL PG_CFLAGS=$GCC12 make -C babelfishpg_tsql antlr/libantlr_tsql.a
PG_CPPFLAGS=$SPATIAL PG_CFLAGS=$GCC12 make -C babelfishpg_tsql -j"$JOBS"
PG_CPPFLAGS=$SPATIAL PG_CFLAGS=$GCC12 make -C babelfishpg_tsql install
# The server loads the ANTLR runtime at run time: ship it beside PostgreSQL's libraries.
cp -a /usr/local/lib/libantlr4-runtime.so* "$PREFIX/lib/"

step "copy out"
# Headers, static archives and PGXS only serve builds; the image only runs the server.
rm -rf "$PREFIX/include" "$PREFIX/lib/postgresql/pgxs" "$PREFIX"/lib/*.a
cp -a "$PREFIX" /out/babelfish
step "done"

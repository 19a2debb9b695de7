#!/bin/bash
# Turns the runtime container that scripts/babelfish/build.py starts (Debian 12
# minbase with Babelfish's runtime libraries, laid out by debootstrap, no
# network) into the image peek-matrix/babelfish: the build from /out/babelfish
# under /opt/babelfish, a postgres user, the entrypoint, and a cluster
# initialised now so that a container takes seconds, not minutes, to its first
# login. build.py then exports the container and imports it as the image.
#
# Mounts (read-only): /out the build, /recipe this folder.
set -euo pipefail
cp -a /out/babelfish /opt/babelfish
# A library the build linked against but the image lacks would only show when a
# container starts; refuse the image here instead.
missing=$(ldd /opt/babelfish/bin/postgres /opt/babelfish/lib/*.so /opt/babelfish/lib/postgresql/*.so \
	| grep 'not found' | sort -u || true)
if [ -n "$missing" ]; then
	echo "libraries the image lacks (add their packages to RUNTIME_PACKAGES in build.py):" >&2
	echo "$missing" >&2
	exit 1
fi
useradd --system --home-dir /var/lib/babelfish --create-home --shell /bin/bash postgres
install -m 0755 /recipe/babelfish-entrypoint.sh /usr/local/bin/babelfish-entrypoint.sh
setpriv --reuid=postgres --regid=postgres --init-groups bash /recipe/init-cluster.sh
echo "### $(date +%s) image ready"

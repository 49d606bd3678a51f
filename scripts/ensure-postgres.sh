#!/bin/sh
# The test suite starts a throwaway PostgreSQL server; it needs the server binaries (initdb, pg_ctl).
set -e
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 \
   || [ -n "$NUDGE_TEST_PG_URL" ]; then
    exit 0
fi
if [ "$(id -u)" = "0" ]; then
    echo "PostgreSQL server not found: installing Debian's postgresql package" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
else
    echo "PostgreSQL server binaries not found: install them (e.g. sudo apt-get install postgresql)" >&2
    echo "or point NUDGE_TEST_PG_URL at a server where this user may create databases." >&2
    exit 1
fi

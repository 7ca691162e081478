# Sourced by .ci/run: start a throw-away PostgreSQL server and export its URL for the tests.
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
PGDATA=$(mktemp -d /tmp/mc-pg.XXXXXX)
chown -R postgres:postgres "$PGDATA" 2>/dev/null || true
PGPORT=${PGPORT:-54329}
if id postgres >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  runpg() { su postgres -s /bin/bash -c "$*"; }
else
  runpg() { bash -c "$*"; }
fi
runpg "$PGBIN/initdb -D $PGDATA -A trust -U postgres >/dev/null"
runpg "$PGBIN/pg_ctl -D $PGDATA -o '-p $PGPORT -k /tmp -c listen_addresses=127.0.0.1' -l $PGDATA/log -w start >/dev/null"
trap 'runpg "$PGBIN/pg_ctl -D $PGDATA -m fast stop" >/dev/null 2>&1 || true' EXIT
export MORPHOCLUSTER_TEST_PG_URL="postgresql+psycopg://postgres@127.0.0.1:$PGPORT/postgres"

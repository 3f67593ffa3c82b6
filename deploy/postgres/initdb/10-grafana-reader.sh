#!/bin/sh
# Runs once, when the postgres service initialises its empty volume: a role
# that may only read, for Grafana's PostgreSQL data source (Grafana sends the
# database whatever SQL its users write). The ledger's tables, which qwend's
# migrations create later as POSTGRES_USER, become readable to it by default.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set owner="$POSTGRES_USER" --set db="$POSTGRES_DB" \
  --set reader_password="${LEDGER_READER_PASSWORD:?LEDGER_READER_PASSWORD is not set}" <<'SQL'
CREATE ROLE grafana_reader LOGIN PASSWORD :'reader_password';
ALTER ROLE grafana_reader SET default_transaction_read_only = on;
ALTER ROLE grafana_reader SET statement_timeout = '30s';
GRANT CONNECT ON DATABASE :"db" TO grafana_reader;
GRANT USAGE ON SCHEMA public TO grafana_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO grafana_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT SELECT ON TABLES TO grafana_reader;
SQL

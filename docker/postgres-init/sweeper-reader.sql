-- The role `sweeper query` runs users' SQL as, created when the database is first initialised (what
-- `sweeper db reader` does on an existing server; a test keeps the two alike). It logs in with a password
-- derived from the owner's, belongs to no role, and reads what `sweeper query` grants it: sweeper's and
-- Optuna's tables.
\getenv owner_password POSTGRES_PASSWORD
SELECT format('%s ROLE sweeper_reader LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION '
              'NOBYPASSRLS PASSWORD %L',
              CASE WHEN EXISTS (SELECT FROM pg_roles WHERE rolname = 'sweeper_reader') THEN 'ALTER' ELSE 'CREATE' END,
              encode(sha256(convert_to('sweeper_reader:' || :'owner_password', 'UTF8')), 'hex')) \gexec
ALTER ROLE sweeper_reader SET default_transaction_read_only = 'on';
ALTER ROLE sweeper_reader SET statement_timeout = '5min';
ALTER ROLE sweeper_reader SET idle_in_transaction_session_timeout = '5min';
ALTER ROLE sweeper_reader SET temp_file_limit = '1GB';

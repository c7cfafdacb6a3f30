-- Least-privilege roles for a production PostgreSQL.
-- The migration role owns the schema; the application role may not rewrite history:
-- audit events are INSERT/SELECT only (triggers also refuse UPDATE/DELETE, see
-- dmp/audit/migrations/0002_append_only_triggers.py), and TRUNCATE is never granted.
--
--   psql -v app_password="'...'" -f deploy/postgres-roles.sql opendmp

CREATE ROLE opendmp_owner NOLOGIN;
CREATE ROLE opendmp_app LOGIN PASSWORD :app_password;

GRANT CONNECT ON DATABASE opendmp TO opendmp_app;
GRANT USAGE ON SCHEMA public TO opendmp_app;

-- Every table: read and write rows, never truncate or alter.
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO opendmp_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO opendmp_app;
ALTER DEFAULT PRIVILEGES FOR ROLE opendmp_owner IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO opendmp_app;
ALTER DEFAULT PRIVILEGES FOR ROLE opendmp_owner IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO opendmp_app;

-- The audit trail is append-only for the application.
REVOKE UPDATE, DELETE, TRUNCATE ON audit_auditevent FROM opendmp_app;
REVOKE UPDATE, DELETE, TRUNCATE ON audit_auditcheckpoint FROM opendmp_app;

-- View pgbell.rules: every trigger that runs a pgbell function, straight from
-- the catalog, for DBAs (`SELECT * FROM pgbell.rules`) and `pgbell rules`.
-- Reads pg_trigger; writes and sends nothing.

CREATE VIEW pgbell.rules AS
SELECT t.tgname::text AS name,
       t.tgrelid::regclass::text AS table_name,
       concat_ws(' OR ',
                 CASE WHEN t.tgtype & 4 <> 0 THEN 'INSERT' END,
                 CASE WHEN t.tgtype & 8 <> 0 THEN 'DELETE' END,
                 CASE WHEN t.tgtype & 16 <> 0 THEN 'UPDATE' END,
                 CASE WHEN t.tgtype & 32 <> 0 THEN 'TRUNCATE' END) AS event,
       CASE WHEN t.tgtype & 2 <> 0 THEN 'BEFORE' WHEN t.tgtype & 64 <> 0 THEN 'INSTEAD OF' ELSE 'AFTER' END AS timing,
       CASE WHEN t.tgtype & 1 <> 0 THEN 'ROW' ELSE 'STATEMENT' END AS level,
       t.tgfoid::regprocedure::text AS function,
       t.tgenabled <> 'D' AS enabled,
       obj_description(t.oid, 'pg_trigger') AS comment
  FROM pg_trigger t
  JOIN pg_proc p ON p.oid = t.tgfoid
 WHERE NOT t.tgisinternal
   AND p.pronamespace = 'pgbell'::regnamespace;

COMMENT ON VIEW pgbell.rules IS
    'Every notification trigger installed: table, event, function, enabled, comment. Toggle one with pgbell rules disable/enable NAME (ALTER TABLE ... DISABLE TRIGGER).';

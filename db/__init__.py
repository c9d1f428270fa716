"""pgbell's SQL, shipped inside the package as `pgbell.db`: the schema at the
migration head (schema.sql), one file per function or trigger (triggers/),
and the alembic migrations that install them (migrations/)."""

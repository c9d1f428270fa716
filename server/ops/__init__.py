"""Operations: the `pgbell` command, migrations, the embedded PostgreSQL.

Dependency rule: the top of the graph. Nothing else in pgbell imports it,
except that the migrations themselves call pgbell.ops.migrate's helpers.
"""

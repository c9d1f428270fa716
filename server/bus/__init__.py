"""The bus: PostgreSQL in, frames out. The listener (LISTEN connection), the
feed (commit-safe cursor), the hub (user id -> sockets) and the wire format.

Dependency rule: nothing here imports aiohttp or any other part of pgbell
but the bus itself and pgbell's top-level modules (sql, config); the HTTP
layer drives the bus, never the other way round. tests/test_layout.py keeps
it so.
"""

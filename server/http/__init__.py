"""The HTTP layer: the app factory, the WebSocket protocol, REST, request
authentication, errors, CORS, metrics and the OpenAPI document.

Dependency rule: may import the bus, the demo's routes and pgbell's
top-level modules; never the operations (pgbell.ops).
"""

"""pgbell: real-time notifications with PostgreSQL as the message bus."""

__version__ = "0.1.0"

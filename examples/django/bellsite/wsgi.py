"""WSGI entry point, for a real server (gunicorn bellsite.wsgi, ...)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bellsite.settings")

application = get_wsgi_application()

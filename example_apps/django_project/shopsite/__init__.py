"""The project package: settings, urls, and the WSGI/ASGI entry points."""

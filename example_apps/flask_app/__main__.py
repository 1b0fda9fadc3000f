"""``python -m example_apps.flask_app [--port 5000]``: the shop on Flask's development server.

For production use a WSGI server, e.g.
``gunicorn -w 2 --threads 4 -b 127.0.0.1:8000 'example_apps.flask_app.app:create_app()'``.
"""

from __future__ import annotations

import argparse

from .app import create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m example_apps.flask_app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    create_app().run(host=args.host, port=args.port)


if __name__ == "__main__":
    main()

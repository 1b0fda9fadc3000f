"""``python -m example_apps.django_project [--port 8000]``: the shop, in one command.

It uses the server in ``MYSQLPOOL_URL`` (or ``DATABASE_URL``); without one it starts a throwaway
MariaDB from the local ``mariadbd`` (removed on exit). Then it runs ``manage.py check``, creates
the tables (``init_shop``, then ``migrate`` for the ORM's and the admin's) and serves the site
with Django's development server.

For production use a real server with the same settings module, e.g. ``gunicorn -w 2
--threads 4 -b 127.0.0.1:8000 example_apps.django_project.shopsite.wsgi:application``
or ``uvicorn example_apps.django_project.shopsite.asgi:application``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Iterator

SETTINGS = "example_apps.django_project.shopsite.settings"


@contextlib.contextmanager
def _server_url() -> Iterator[None]:
    if os.environ.get("MYSQLPOOL_URL") or os.environ.get("DATABASE_URL"):
        yield
        return
    from mysqlpool_ext._server import ThrowawayServer, find_server_binary

    if find_server_binary() is None:
        raise SystemExit(
            "set MYSQLPOOL_URL=mysql://user:password@host:3306/db, or install MariaDB "
            "(apt-get install mariadb-server) for a throwaway server"
        )
    print("no MYSQLPOOL_URL: starting a throwaway MariaDB (removed on exit) ...", flush=True)
    with ThrowawayServer(database="shop") as server:
        os.environ["MYSQLPOOL_URL"] = server.url
        yield


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m example_apps.django_project")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS)
    # SIGTERM (docker stop, timeout) exits like Ctrl-C: the throwaway server and pools are closed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with _server_url():
        import django
        from django.core.management import call_command

        django.setup()
        call_command("check")
        call_command("init_shop")
        call_command("migrate", interactive=False, verbosity=0)
        print(f"try: curl http://{args.host}:{args.port}/users/1", flush=True)
        call_command("runserver", f"{args.host}:{args.port}", use_reloader=False)


if __name__ == "__main__":
    main()

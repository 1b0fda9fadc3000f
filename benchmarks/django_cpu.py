"""Django ORM: CPU time per request of the pooled ENGINE vs Django's own persistent connection.

    python -m benchmarks.django_cpu [--rounds 16] [--requests 1000] [--procs 2] [--view get]
    python -m benchmarks.django_cpu --profile pool [--requests 20000]   # pyinstrument call tree

Requests per second under gunicorn on a shared 2-core machine swing by a third from one run to
the next; the CPU a worker spends per request swings far less. Each subject (``SHOP_ENGINE``
settings of the example project, as in ``benchmarks.django_bench``) runs in worker processes of
its own, one thread each, calling Django's WSGI handler directly with the environ gunicorn would
build (every middleware, the URL resolver, the view, ``request_finished``). The subjects take
turns, one round each, the order reversed every other round (ABBA); a round is ``--requests``
requests and reports the worker's CPU time (user + system, ``time.process_time``) and wall time
per request, and the server's statement counters (``Com_*``) gained during it. The ratio is taken
per round pair. Two processes of one subject differ by a few per cent (their memory layout), so
each subject has ``--procs`` processes (the same hash seeds for every subject), used in turn.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import pymysql

from .django_bench import SCENARIOS, _env, _prepare

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: (key, environment): the subjects compared (django_bench's keys).
SUBJECTS: dict[str, dict[str, str]] = {
    "pool": {"SHOP_ENGINE": "pool"},
    "orm60": {"SHOP_ENGINE": "stock", "SHOP_CONN_MAX_AGE": "60"},
    "orm0": {"SHOP_ENGINE": "stock", "SHOP_CONN_MAX_AGE": "0"},
    # Our ENGINE with the pure-Python row decoder (what a wheel without a compiler runs).
    "pool_pure": {"SHOP_ENGINE": "pool", "MYSQLPOOL_NO_ACCEL": "1"},
}

#: The connect arguments the example project's settings take from a URL.
_KEYS = ("host", "port", "user", "password", "database")


# -- the worker: one subject, one process ----------------------------------------------------------


def _handler() -> Any:
    import django
    from django.core.handlers.wsgi import WSGIHandler

    django.setup(set_prefix=False)
    return WSGIHandler()


def _environ(path: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_CONNECTION": "close",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


def _requests(app: Any, path: str, n: int) -> None:
    status: list[str] = []

    def start_response(s: str, headers: Any, exc_info: Any = None) -> None:
        status.append(s)

    for _ in range(n):
        status.clear()
        body = app(_environ(path), start_response)
        try:
            for _chunk in body:
                pass
        finally:
            body.close()  # what a WSGI server does: request_finished fires here
        if not status or not status[0].startswith("200"):
            raise RuntimeError(f"GET {path}: {status}")


def worker() -> int:
    """Read ``{"path": ..., "n": ...}`` lines; answer each with the round's CPU and wall time."""
    where = os.environ.get("DJANGO_CPU_PACKAGE_DIR")
    if where:
        sys.path.insert(0, where)  # ahead of the working directory's mysqlpool_ext
    app = _handler()
    import mysqlpool_ext

    try:
        from mysqlpool_ext import _rows

        compiled = "compiled" if _rows.has_accelerator() else "pure-Python"
    except ImportError:
        compiled = "?"
    print(f"[django_cpu] {os.environ.get('SHOP_ENGINE')}: mysqlpool_ext from "
          f"{os.path.dirname(mysqlpool_ext.__file__)}, row decoder: {compiled}",
          file=sys.stderr)  # fmt: skip
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd.get("profile") == "cprofile":
            import cProfile

            prof = cProfile.Profile()
            prof.runcall(_requests, app, cmd["path"], cmd["n"])
            prof.dump_stats(cmd["out"])
            print(json.dumps({}), flush=True)
            continue
        if cmd.get("profile"):
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0001)
            profiler.start()
            _requests(app, cmd["path"], cmd["n"])
            profiler.stop()
            print(profiler.output_text(unicode=True, color=False, show_all=False), file=sys.stderr)
            print(json.dumps({}), flush=True)
            continue
        t0, cpu0, wall0 = os.times(), time.process_time(), time.perf_counter()
        _requests(app, cmd["path"], cmd["n"])
        cpu, wall, t1 = time.process_time() - cpu0, time.perf_counter() - wall0, os.times()
        print(json.dumps({"cpu_s": cpu, "wall_s": wall, "user_s": t1.user - t0.user,
                          "sys_s": t1.system - t0.system}), flush=True)  # fmt: skip
    return 0


# -- the coordinator -------------------------------------------------------------------------------


class _Worker:
    def __init__(self, key: str, url: str, seed: int) -> None:
        self.key = key
        # "pool@DIR": our ENGINE with the package imported from DIR (a before/after comparison:
        # DIR holds another version of mysqlpool_ext/).
        subject, _, where = key.partition("@")
        env = _env(url, SUBJECTS[subject])
        if where:
            env["DJANGO_CPU_PACKAGE_DIR"] = os.path.abspath(where)
        # The same string-hash seeds for every subject: dict layouts (hence speed) then differ
        # between a subject's processes, not between subjects.
        env["PYTHONHASHSEED"] = str(seed)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.django_cpu", "--worker"],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip

    def ask(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.key} exited with {self.proc.wait()}")
        out: dict[str, Any] = json.loads(line)
        return out

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def _com_counters(kwargs: dict[str, Any]) -> dict[str, int]:
    conn = pymysql.connect(**kwargs, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW GLOBAL STATUS WHERE Variable_name LIKE 'Com\\_%' OR "
                        "Variable_name IN ('Questions', 'Connections')")  # fmt: skip
            return {str(k): int(v) for k, v in cur.fetchall() if str(v).isdigit()}
    finally:
        conn.close()


def run(
    url: str | None,
    subjects: list[str],
    view: str,
    rounds: int,
    requests: int,
    procs: int = 2,
    say: Any = print,
) -> dict[str, Any]:
    if url is None:
        from ._harness import bench_server

        with bench_server() as server:
            return run(server.url, subjects, view, rounds, requests, procs, say)
    from ._harness import url_kwargs

    kwargs = url_kwargs(url, _KEYS)
    _prepare(url, kwargs)
    path = next(p for k, _, p in SCENARIOS if k == view)
    # ``procs`` processes per subject (hash seeds 1..procs), taking turns: one process's luck
    # (its memory layout) does not decide the comparison.
    workers = [_Worker(key, url, seed) for seed in range(1, procs + 1) for key in subjects]
    per: dict[str, list[dict[str, Any]]] = {key: [] for key in subjects}
    try:
        for w in workers:  # warm-up: imports, the pool fills, caches
            w.ask(path=path, n=max(200, requests // 5))
        for rnd in range(rounds):
            group = workers[(rnd // 2 % procs) * len(subjects) :][: len(subjects)]
            order = group if rnd % 2 == 0 else group[::-1]
            for w in order:
                before = _com_counters(kwargs)
                res = w.ask(path=path, n=requests)
                after = _com_counters(kwargs)
                # The counters' own query (SHOW GLOBAL STATUS) counts once in the delta.
                com = {
                    k: (after[k] - before.get(k, 0)) / requests
                    for k in after
                    if after[k] - before.get(k, 0) > 1
                }
                res.update(cpu_us=res["cpu_s"] / requests * 1e6,
                           wall_us=res["wall_s"] / requests * 1e6, com=com)  # fmt: skip
                per[w.key].append(res)
            say(f"round {rnd + 1:>2}: " + "  ".join(
                f"{k} {per[k][-1]['cpu_us']:6.0f} µs cpu {per[k][-1]['wall_us']:6.0f} µs wall"
                for k in subjects))  # fmt: skip
    finally:
        for w in workers:
            w.close()
    return {"view": view, "path": path, "rounds": rounds, "requests": requests, "procs": procs,
            "per": per}  # fmt: skip


def report(result: dict[str, Any], say: Any = print) -> None:
    per = result["per"]
    keys = list(per)
    base = keys[0]
    say(f"\nGET {result['path']}: {result['rounds']} rounds x {result['requests']} requests, "
        f"{result.get('procs', 1)} processes per subject in turn, one thread each, paired rounds "
        "(ABBA)")  # fmt: skip
    for key in keys:
        cpu = [r["cpu_us"] for r in per[key]]
        wall = [r["wall_us"] for r in per[key]]
        com = per[key][-1]["com"]
        stmts = ", ".join(f"{k} {v:.2f}" for k, v in sorted(com.items()))
        usr = statistics.median(r["user_s"] / result["requests"] * 1e6 for r in per[key])
        sys_ = statistics.median(r["sys_s"] / result["requests"] * 1e6 for r in per[key])
        say(f"  {key:<6} cpu/request median {statistics.median(cpu):6.0f} µs "
            f"(user {usr:.0f}, sys {sys_:.0f}) "
            f"(min {min(cpu):.0f}, max {max(cpu):.0f}); "
            f"wall median {statistics.median(wall):6.0f} µs; "
            f"server counters per request: {stmts}")  # fmt: skip
    for key in keys[1:]:
        ratios = [a["cpu_us"] / b["cpu_us"] for a, b in zip(per[base], per[key])]
        wr = [a["wall_us"] / b["wall_us"] for a, b in zip(per[base], per[key])]
        say(
            f"  {base} ÷ {key}, per round: cpu "
            + " ".join(f"{r:.2f}" for r in ratios)
            + f" (median {statistics.median(ratios):.3f}); wall median {statistics.median(wr):.3f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.django_cpu", description=__doc__)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--subjects",
        default="pool,orm60",
        help="comma-separated, the first is the base of the ratios: pool, orm60, orm0, pool_pure, "
        "pool@DIR (our ENGINE with mysqlpool_ext imported from DIR: before/after)",
    )
    parser.add_argument("--view", default="get", choices=[k for k, _, _ in SCENARIOS])
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--requests", type=int, default=1000, help="requests per round")
    parser.add_argument("--procs", type=int, default=2, help="processes per subject, in turn")
    parser.add_argument("--profile", metavar="SUBJECT", help="print a pyinstrument tree instead")
    parser.add_argument("--cprofile", metavar="FILE", help="with --profile: cProfile stats to FILE")
    parser.add_argument("--json", metavar="FILE", help="also write the rounds to FILE")
    args = parser.parse_args(argv)
    if args.worker:
        return worker()
    url = os.environ.get("MYSQLPOOL_TEST_URL")
    if args.profile:
        from ._harness import bench_server

        with bench_server(url) as server:
            from ._harness import url_kwargs

            kwargs = url_kwargs(server.url, _KEYS)
            _prepare(server.url, kwargs)
            path = next(p for k, _, p in SCENARIOS if k == args.view)
            w = _Worker(args.profile, server.url, 1)
            w.ask(path=path, n=500)
            if args.cprofile:
                w.ask(path=path, n=args.requests, profile="cprofile", out=args.cprofile)
            else:
                w.ask(path=path, n=args.requests, profile=True)
            w.close()
        return 0
    result = run(url, args.subjects.split(","), args.view, args.rounds, args.requests, args.procs)
    report(result)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

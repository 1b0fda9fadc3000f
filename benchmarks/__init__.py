"""Benchmarks for mysqlpool_ext against its peers, all in one run: ``python -m benchmarks``.

Every module here measures in the same process and against the same server, so the ratios in
BENCHMARKS.md compare like with like on a noisy machine. The runner (``benchmarks/__main__.py``)
starts the throwaway MariaDB the tests use (or uses ``MYSQLPOOL_TEST_URL``), runs
``core_bench`` and then every optional module that exists (``async_bench``, ``flask_bench``,
``django_bench``), writes ``benchmarks/results/<timestamp>.json`` (and ``latest.json``),
regenerates the tables in BENCHMARKS.md and the chart ``docs/benchmarks.png`` and keeps the data
they came from in ``benchmarks/results/benchmarks.committed.json``.

Contract for a benchmark module ``benchmarks/<name>.py``
--------------------------------------------------------
It exposes ``run(...) -> list[dict]`` and may be run alone as ``python -m benchmarks.<name>``.
The runner calls ``run`` with those of these keyword arguments that its signature accepts
(``**kwargs`` accepts all of them):

- ``url``: ``mysql://user:password@host:port/database`` of the server to use (never print it:
  it holds the password); also passed as ``server_url`` / ``db_url`` if those are the names used;
- ``duration``: seconds per measured cell (time-boxed runs; 1.0 by default, 0.3 with ``--quick``;
  a module may impose its own minimum);
- ``repeats``: how many times each cell is repeated (interleaved); report the median (3 by
  default, 1 with ``--quick``);
- ``quick``: a smoke run (CI): fewer cells, shorter durations;
- ``progress``: a ``print``-like callable for one-line progress messages.

Each returned dict is one cell (one subject in one scenario), with these keys (extra keys are kept
in the JSON and ignored by the tables):

- ``suite``: ``"core"``, ``"async"``, ``"flask"``, ``"django"``...;
- ``scenario``: e.g. ``"SELECT 1, 64 tasks on 8 connections"``; the cells of one scenario share
  a table and a chart panel;
- ``subject``: e.g. ``"mysqlpool_ext"``, ``"aiomysql"``, ``"Flask-SQLAlchemy pool_size=4"``;
- ``ops_s``: operations (queries, requests) per second — the median of the repeats;
- ``p50_ms``, ``p99_ms``: latency percentiles in milliseconds (``None`` if not measured);
- ``errors``: failed operations (a failed borrow counts; never crash the run for it);
- ``ours``: True for this project's cells (the ratio columns compare them with every other
  subject of the same scenario);
- optional ``note`` (str), ``p999_ms``, ``max_ms``, ``ops`` (total count) and anything else.
"""

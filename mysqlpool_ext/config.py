"""Options: validated once, at construction, so the hot path never re-checks them.

Three sources feed a pool: keyword arguments, a ``mysql://`` URL and the environment
(``MYSQLPOOL_URL`` / ``DATABASE_URL``). All of them end up in :func:`build_options`, which splits
pool options from connection options, rejects unknown names with a suggestion (a typo such as
``max_sise=`` must not silently vanish into ``**kwargs``) and checks every value. Messages name the
option and, for secrets, never echo the value.
"""

from __future__ import annotations

import difflib
import inspect
import math
import os
import ssl as _ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import pymysql
import pymysql.charset
import pymysql.cursors

from .errors import ConfigError

__all__ = [
    "TARGETS",
    "PoolOptions",
    "build_options",
    "convert_option",
    "parse_url",
    "redact_url",
    "url_from_env",
]

#: Names ``pymysql.connect`` accepts, read from its signature so new PyMySQL options just work.
CONNECT_PARAMS: frozenset[str] = frozenset(
    name
    for name, p in inspect.signature(pymysql.connections.Connection.__init__).parameters.items()
    if name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD
)

#: "auto" (the default): a session the borrower changed is reset to its connect-time state
#: (one round trip), an untouched one goes back with none; "session": reset after every borrow;
#: "rollback": only roll back an open transaction (session state leaks to the next borrower);
#: None: nothing at all.
RESET_POLICIES = ("auto", "session", "rollback", None)
CHECK_POLICIES = ("ping", None)

#: Default lifetime: well below MySQL's default ``wait_timeout`` (8 h) and below the
#: 30-60 min idle cut-offs of most load balancers and proxies (HikariCP uses 30 min too).
DEFAULT_MAX_LIFETIME = 1800.0

# -- several servers (host lists, targets): see mysqlpool_ext.topology ---------------------------
#: Which servers of a host list a pool lends connections to.
TARGETS = ("primary", "replica", "prefer-replica", "any")
#: Seconds between two role checks of every host. A failed write (1290...) or a lost connection
#: triggers one at once, so this only bounds how long a quiet switchover goes unnoticed.
DEFAULT_TOPOLOGY_INTERVAL = 3.0


@dataclass(frozen=True)
class PoolOptions:
    """The pool's own options, normalised. ``connect_kwargs`` go to ``pymysql.connect``."""

    size: int = 5
    max_size: int = 5
    timeout: float = 30.0
    max_lifetime: float | None = DEFAULT_MAX_LIFETIME
    max_idle: float | None = 600.0
    check: Callable[[Any], None] | str | None = "ping"
    check_window: float = 0.5
    reset: str | None = "auto"
    name: str | None = None
    lazy: bool = False
    leak_timeout: float | None = None
    reconnect_backoff_max: float = 1.0
    # -- several servers (mysqlpool_ext.topology): None = one host, exactly as before -----------
    hosts: tuple[tuple[str, int], ...] | None = None
    target: str = "primary"
    topology_interval: float = DEFAULT_TOPOLOGY_INTERVAL
    # Not in the repr: it holds the password (PoolOptions is public, and shows up in tracebacks
    # with locals and in error trackers that capture them).
    connect_kwargs: dict[str, Any] = field(default_factory=dict, repr=False)


POOL_OPTION_NAMES: frozenset[str] = frozenset(
    f for f in PoolOptions.__dataclass_fields__ if f != "connect_kwargs"
)


def _suggest(name: str) -> str:
    close = difflib.get_close_matches(name, sorted(POOL_OPTION_NAMES | CONNECT_PARAMS), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _number(
    key: str,
    value: Any,
    *,
    minimum: float = 0.0,
    allow_zero: bool = True,
    allow_none: bool = False,
) -> float | None:
    if value is None:
        if allow_none:
            return None
        raise ConfigError(f"option {key!r} must be a number of seconds, not None", option=key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(
            f"option {key!r} must be a number, got {type(value).__name__}", option=key
        )
    try:
        as_float = float(value)  # an int beyond float range raised OverflowError in isnan()
    except OverflowError:
        raise ConfigError(f"option {key!r} is too large", option=key) from None
    if math.isnan(as_float) or math.isinf(as_float):
        raise ConfigError(f"option {key!r} must be a finite number, got {value!r}", option=key)
    if value < minimum or (not allow_zero and value == 0):
        bound = f"> {minimum:g}" if not allow_zero else f">= {minimum:g}"
        raise ConfigError(f"option {key!r} must be {bound}, got {value!r}", option=key)
    return float(value)


def _int(key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(
            f"option {key!r} must be an integer, got {type(value).__name__}", option=key
        )
    if value < minimum:
        raise ConfigError(f"option {key!r} must be >= {minimum}, got {value!r}", option=key)
    return value


def _check_connect_kwargs(kw: dict[str, Any]) -> None:
    """Catch the mistakes PyMySQL would only report at connect time, or never."""
    if "host" in kw and kw["host"] is not None and not isinstance(kw["host"], str):
        raise ConfigError(
            f"option 'host' must be a string, got {type(kw['host']).__name__}", option="host"
        )
    if "port" in kw:
        port = kw["port"]
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ConfigError(
                f"option 'port' must be an integer in 1..65535, got {port!r}", option="port"
            )
    for key in ("user", "database", "unix_socket", "init_command", "sql_mode", "program_name"):
        if kw.get(key) is not None and not isinstance(kw[key], str):
            raise ConfigError(
                f"option {key!r} must be a string, got {type(kw[key]).__name__}", option=key
            )
    for key in ("password", "passwd"):
        if kw.get(key) is not None and not isinstance(kw[key], (str, bytes)):
            raise ConfigError(
                f"option {key!r} must be a string (its value is not shown)", option=key
            )
    if "connect_timeout" in kw:
        _number("connect_timeout", kw["connect_timeout"], allow_zero=False)
        if kw["connect_timeout"] > 31536000:
            raise ConfigError(
                "option 'connect_timeout' must be <= 31536000", option="connect_timeout"
            )
    for key in ("read_timeout", "write_timeout"):
        if key in kw:
            _number(key, kw[key], allow_zero=False, allow_none=True)
            # Huge values overflow in socket.settimeout() at connect time: cap as connect_timeout.
            if kw[key] is not None and kw[key] > 31536000:
                raise ConfigError(f"option {key!r} must be <= 31536000", option=key)
    if kw.get("charset") is not None:
        if not isinstance(kw["charset"], str) or not kw["charset"]:
            raise ConfigError("option 'charset' must be a character set name", option="charset")
        try:
            known = pymysql.charset.charset_by_name(kw["charset"])
        except KeyError:
            known = None
        if known is None:  # PyMySQL >= 1.1 returns None for an unknown name, older raised
            raise ConfigError(
                f"option 'charset': unknown character set {kw['charset']!r}", option="charset"
            )
    if "autocommit" in kw and kw["autocommit"] not in (True, False, None, 0, 1):
        raise ConfigError(
            f"option 'autocommit' must be True, False or None, got {kw['autocommit']!r}",
            option="autocommit",
        )
    if "cursorclass" in kw:
        cc = kw["cursorclass"]
        if not (isinstance(cc, type) and issubclass(cc, pymysql.cursors.Cursor)):
            raise ConfigError(
                "option 'cursorclass' must be a pymysql.cursors.Cursor subclass",
                option="cursorclass",
            )
    if "ssl" in kw and kw["ssl"] is not None and not isinstance(kw["ssl"], (dict, _ssl.SSLContext)):
        raise ConfigError("option 'ssl' must be a dict or an ssl.SSLContext", option="ssl")
    if "max_allowed_packet" in kw:
        _int("max_allowed_packet", kw["max_allowed_packet"], 1)
    for key in ("compress", "named_pipe"):
        if kw.get(key):
            raise ConfigError(f"option {key!r} is not supported by PyMySQL", option=key)


def build_options(kwargs: Mapping[str, Any]) -> PoolOptions:
    """Split and validate ``ConnectionPool(**kwargs)``.

    Raises :class:`ConfigError` naming the first bad option; unknown names get a suggestion.
    """
    pool: dict[str, Any] = {}
    connect: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key in POOL_OPTION_NAMES:
            pool[key] = value
        elif key in CONNECT_PARAMS:
            connect[key] = value
        else:
            raise ConfigError(f"unknown option {key!r}{_suggest(key)}", option=key)

    # PyMySQL's deprecated spellings: accept them, store the modern name, so the pool can read
    # e.g. the database back for a reset without looking in two places.
    if "db" in connect:
        db = connect.pop("db")
        connect.setdefault("database", db)
    if "passwd" in connect:
        pw = connect.pop("passwd")
        if not connect.get("password"):
            connect["password"] = pw
    _check_connect_kwargs(connect)
    password = connect.get("password")
    if isinstance(password, str) and not password.isascii():
        # PyMySQL sends a str password encoded as latin-1: a "€" cannot be sent at all (and the
        # UnicodeEncodeError it raises quotes the whole password), and an "é" goes out as a byte
        # the server never stored. Servers hash what a utf8mb4 client set, and mysqlclient sends
        # UTF-8: so does the pool.
        connect["password"] = password.encode("utf-8")

    size = _int("size", pool.get("size", 5), 0)
    max_size = pool.get("max_size")
    if max_size is None:
        max_size = max(size, 1)
    max_size = _int("max_size", max_size, 1)
    if max_size < size:
        raise ConfigError(
            f"option 'max_size' ({max_size}) must be >= 'size' ({size})", option="max_size"
        )

    timeout = _number("timeout", pool.get("timeout", 30.0))
    max_lifetime = _number(
        "max_lifetime",
        pool.get("max_lifetime", DEFAULT_MAX_LIFETIME),
        allow_zero=False,
        allow_none=True,
    )
    max_idle = _number("max_idle", pool.get("max_idle", 600.0), allow_zero=False, allow_none=True)
    check_window = _number("check_window", pool.get("check_window", 0.5))
    leak_timeout = _number(
        "leak_timeout", pool.get("leak_timeout"), allow_zero=False, allow_none=True
    )
    backoff = _number(
        "reconnect_backoff_max", pool.get("reconnect_backoff_max", 1.0), allow_zero=False
    )

    check = pool.get("check", "ping")
    if not (check in CHECK_POLICIES or callable(check)):
        raise ConfigError(
            f"option 'check' must be 'ping', None or a callable, got {check!r}", option="check"
        )
    reset = pool.get("reset", "auto")
    if reset not in RESET_POLICIES:
        raise ConfigError(
            f"option 'reset' must be 'auto', 'session', 'rollback' or None, got {reset!r}",
            option="reset",
        )
    name = pool.get("name")
    if name is not None and (not isinstance(name, str) or not name):
        raise ConfigError(f"option 'name' must be a non-empty string, got {name!r}", option="name")
    lazy = pool.get("lazy", False)
    if not isinstance(lazy, bool):
        raise ConfigError(f"option 'lazy' must be True or False, got {lazy!r}", option="lazy")

    hosts, target, topology_interval = _topology_options(pool, connect)

    assert timeout is not None and check_window is not None and backoff is not None
    return PoolOptions(
        size=size,
        max_size=max_size,
        timeout=timeout,
        max_lifetime=max_lifetime,
        max_idle=max_idle,
        check=check,
        check_window=check_window,
        reset=reset,
        name=name,
        lazy=lazy,
        leak_timeout=leak_timeout,
        reconnect_backoff_max=backoff,
        hosts=hosts,
        target=target,
        topology_interval=topology_interval,
        connect_kwargs=connect,
    )


# -- several servers: ``hosts=``, ``target=``, ``topology_interval=`` -----------------------------


def _topology_options(
    pool: dict[str, Any], connect: dict[str, Any]
) -> tuple[tuple[tuple[str, int], ...] | None, str, float]:
    """Validate the host list options. ``hosts`` is normalised to ``((host, port), ...)``; a
    ``target`` given with a single ``host=`` makes a list of one (its role is then checked too).
    With neither, ``hosts`` stays None and the pool behaves exactly as with one server."""
    target = pool.get("target", "primary")
    if target not in TARGETS:
        raise ConfigError(
            f"option 'target' must be one of {', '.join(map(repr, TARGETS))}, got {target!r}",
            option="target",
        )
    interval = _number(
        "topology_interval",
        pool.get("topology_interval", DEFAULT_TOPOLOGY_INTERVAL),
        allow_zero=False,
    )
    assert interval is not None
    raw_hosts = pool.get("hosts")
    if raw_hosts is None:
        if "target" not in pool:
            return None, target, interval
        if connect.get("unix_socket"):
            raise ConfigError("option 'target' needs TCP hosts, not a unix_socket", option="target")
        raw_hosts = [(connect.get("host") or "localhost", connect.get("port") or 3306)]
    elif connect.get("host") is not None or connect.get("unix_socket") is not None:
        which = "host" if connect.get("host") is not None else "unix_socket"
        raise ConfigError(
            f"options 'hosts' and {which!r} exclude each other: list every server in 'hosts'",
            option="hosts",
        )
    if isinstance(raw_hosts, (str, bytes)) or not isinstance(raw_hosts, (list, tuple)):
        raise ConfigError(
            "option 'hosts' must be a list of 'host:port' strings or (host, port) tuples, "
            f"got {type(raw_hosts).__name__}",
            option="hosts",
        )
    if not raw_hosts:
        raise ConfigError("option 'hosts' must list at least one server", option="hosts")
    default_port = connect.get("port") or 3306
    hosts: list[tuple[str, int]] = []
    for item in raw_hosts:
        entry = parse_host(item, default_port)
        if entry in hosts:
            raise ConfigError(f"option 'hosts' lists {entry[0]}:{entry[1]} twice", option="hosts")
        hosts.append(entry)
    connect.pop("host", None)
    connect.pop("port", None)
    return tuple(hosts), target, interval


def parse_host(item: Any, default_port: int = 3306) -> tuple[str, int]:
    """``"db1:3306"``, ``"db1"``, ``"[::1]:3306"`` or ``("db1", 3306)`` -> ``("db1", 3306)``."""
    if isinstance(item, tuple) and len(item) == 2:
        host, port = item
    elif isinstance(item, str):
        text = item.strip()
        if text.startswith("["):  # [IPv6]:port
            host, _, rest = text[1:].partition("]")
            port_text = rest[1:] if rest.startswith(":") else ""
        elif text.count(":") == 1:
            host, _, port_text = text.partition(":")
        else:
            host, port_text = text, ""
        try:
            port = int(port_text) if port_text else default_port
        except ValueError:
            raise ConfigError(
                f"option 'hosts': {item!r} has an invalid port", option="hosts"
            ) from None
    else:
        raise ConfigError(
            f"option 'hosts': each entry must be 'host:port' or (host, port), got {item!r}",
            option="hosts",
        )
    if not isinstance(host, str) or not host:
        raise ConfigError(f"option 'hosts': {item!r} has no host name", option="hosts")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigError(f"option 'hosts': {item!r} needs a port in 1..65535", option="hosts")
    return host, port


def _split_host_list(url: str) -> tuple[str, list[str] | None]:
    """``mysql://u:p@h1:3306,h2:3307/db`` -> (the URL with only ``h1:3306``, ["h1:3306",
    "h2:3307"]); a URL with one host comes back unchanged with None. urlsplit cannot read a
    comma-separated netloc (its port parser raises), so the list is taken out first."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url, None
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    userinfo, at, hostpart = rest[:end].rpartition("@")
    if "," not in hostpart:
        return url, None
    listed = hostpart.split(",")
    return f"{scheme}://{userinfo}{at}{listed[0]}{rest[end:]}", listed


_SCHEMES = {"mysql", "mariadb", "mysql+pymysql", "mariadb+pymysql", "pymysql"}
_INT_KEYS = {"port", "size", "max_size", "max_allowed_packet", "client_flag"}
_FLOAT_KEYS = {
    "timeout",
    "max_lifetime",
    "max_idle",
    "check_window",
    "leak_timeout",
    "reconnect_backoff_max",
    "topology_interval",
    "connect_timeout",
    "read_timeout",
    "write_timeout",
}
_BOOL_KEYS = {
    "autocommit",
    "lazy",
    "ssl_disabled",
    "ssl_verify_cert",
    "ssl_verify_identity",
    "local_infile",
    "binary_prefix",
    "use_unicode",
}
_NONE_WORDS = {"none", "null"}
#: Options whose value is converted (not passed on as text): an empty value is an error.
_TYPED_KEYS = _INT_KEYS | _FLOAT_KEYS | _BOOL_KEYS | {"check", "reset"}


#: Query parameters whose value is a secret: masked by :func:`redact_url`, never echoed.
SECRET_PARAMS = frozenset({"password", "passwd"})

_ENCODE_HINT = (
    "percent-encode the password (and user) in the URL, e.g. with urllib.parse.quote(password, "
    "safe='') - '?', '/', '#', '@', '%' and ':' must be written as %3F, %2F, %23, %40, %25, %3A"
)


def _split_query(query: str) -> list[tuple[str, str]]:
    """``a=1&b=2`` -> pairs, percent-decoded with :func:`~urllib.parse.unquote`.

    Not :func:`~urllib.parse.parse_qsl`: that decodes ``+`` as a space (HTML form encoding), so
    ``?password=a+b`` would log in with ``'a b'``. In a URL a ``+`` is a plus.
    """
    pairs = []
    for piece in query.split("&"):
        if not piece:
            continue
        key, _, value = piece.partition("=")
        pairs.append((unquote(key), unquote(value)))
    return pairs


def _mask_query(query: str) -> str:
    """The query string with the value of every secret parameter replaced by ``***``."""
    pieces = []
    for piece in query.split("&"):
        key, sep, _ = piece.partition("=")
        if sep and unquote(key).lower() in SECRET_PARAMS:
            piece = f"{key}=***"
        pieces.append(piece)
    return "&".join(pieces)


#: Query parameters whose values may hold an ``@`` (``init_command=SET @x=1``, ``user=me@corp``).
_FREE_TEXT_PARAMS = frozenset({"init_command", "user", "password", "passwd", "program_name"})


def _ambiguous(url: str) -> bool:
    """True when an unencoded ``?``, ``/``, ``#`` or ``@`` in the credentials has moved part of
    them elsewhere in the URL: the parse would be wrong (wrong host, credentials dropped) and every
    message that quotes a part of the URL could quote part of the password.

    The credentials end at the last ``@`` before the host; the host ends at the first ``/``, ``?``
    or ``#``. So an ``@`` may appear after that point only inside the value of a known query
    parameter (``init_command=SET @x=1``), and at most one ``@`` before it.
    """
    rest = url.split("://", 1)[1] if "://" in url else url
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:cut], rest[cut:]
    if authority.count("@") > 1:
        return True
    if "@" not in tail:
        return False
    tail, _, fragment = tail.partition("#")
    path, _, query = tail.partition("?")
    if "@" in path or "@" in fragment:
        return True  # a database name or a fragment with an "@": part of a password, surely
    for piece in query.split("&"):
        key, sep, _ = piece.partition("=")
        if "@" in piece and ("@" in key or not sep or unquote(key) not in _FREE_TEXT_PARAMS):
            return True
    return False


def redact_url(url: str) -> str:
    """The URL with every credential masked (the userinfo password and ``password=`` /
    ``passwd=`` query values become ``***``): safe for messages and logs.

    When unencoded characters make the credentials ambiguous, everything before the host is
    masked, because no one can tell where the password ends.
    """
    if not isinstance(url, str):
        return "<not a URL>"
    if _ambiguous(url):
        scheme = url.split("://", 1)[0] + "://" if "://" in url else ""
        host = url.rpartition("@")[2]
        host, sep, query = host.partition("?")
        return f"{scheme}***@{host}{sep}{_mask_query(query)}"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    parts = parts._replace(query=_mask_query(parts.query))
    if parts.password is None:
        if parts.username is None and "@" in parts.netloc:
            return parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()
        if parts.username is None and "@" in url and "://" not in url:
            # Credentials urlsplit did not see ("user:pw@host/db", no "mysql://"): mask them all.
            return "***@" + url.rpartition("@")[2]
        return parts.geturl()
    userinfo, host = parts.netloc.rsplit("@", 1)
    return parts._replace(netloc=f"{userinfo.split(':', 1)[0]}:***@{host}").geturl()


def convert_option(key: str, raw: str, url: str) -> Any:
    low = raw.lower().strip()
    if low == "" and (key in _TYPED_KEYS):
        # Never None: an empty setting (a template's or environment's variable left blank) must
        # not quietly mean "wait for ever", "never recycle", "no liveness check" or "no session
        # reset" (which lets one request's session state reach the next). ``none`` says it on
        # purpose.
        what = (
            "say 'auto', 'session', 'rollback' or 'none'"
            if key == "reset"
            else "give a value, or 'none' where the option allows it"
        )
        raise ConfigError(f"URL {redact_url(url)}: parameter {key!r} is empty; {what}", option=key)
    try:
        if key in _BOOL_KEYS:
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            if key == "autocommit" and low in _NONE_WORDS:
                return None
            raise ValueError(raw)
        if key in _INT_KEYS:
            return int(raw)
        if key in _FLOAT_KEYS:
            if low in _NONE_WORDS:
                return None
            return float(raw)
    except ValueError:
        raise ConfigError(
            f"URL {redact_url(url)}: parameter {key!r} has an invalid value {raw!r}", option=key
        ) from None
    if key in ("check", "reset") and low in _NONE_WORDS:
        return None
    return raw


def parse_url(url: str) -> dict[str, Any]:
    """``mysql://user:pw@host:port/db?charset=utf8mb4&size=4`` -> keyword arguments.

    Query parameters may be any pool option or any ``pymysql.connect`` argument; the values are
    converted to the type the option expects. User and password are percent-decoded.
    """
    if not isinstance(url, str) or not url:
        raise ConfigError("URL must be a non-empty string such as 'mysql://user:pw@host:3306/db'")
    if _ambiguous(url):
        # Not echoed at all: the password's pieces may be anywhere in it.
        raise ConfigError(
            f"malformed URL {redact_url(url)}: the credentials contain an unencoded '?', '/', "
            f"'#' or '@'; {_ENCODE_HINT}",
            option="password",
        )
    url, host_list = _split_host_list(url)  # several servers: h1:3306,h2:3307
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        # ValueError texts from urllib can quote the netloc (and so the password): keep them out.
        kind = "port" if "port" in str(exc).lower() else "syntax"
        raise ConfigError(f"malformed URL {redact_url(url)}: invalid {kind}") from None
    if parts.scheme.lower() not in _SCHEMES:
        # Not echoed: without a known scheme there is no telling which part is a password.
        raise ConfigError(
            f"URL scheme must be 'mysql://' or 'mariadb://', got {parts.scheme or 'none'!r}"
        )
    kwargs: dict[str, Any] = {}
    if parts.hostname:
        kwargs["host"] = unquote(parts.hostname)
    if port is not None:
        if not 0 < port < 65536:
            raise ConfigError(f"URL {redact_url(url)}: port must be in 1..65535")
        kwargs["port"] = port
    if parts.username:
        kwargs["user"] = unquote(parts.username)
    if parts.password is not None:
        kwargs["password"] = unquote(parts.password)
    db = parts.path.lstrip("/")
    if db:
        if "/" in db:
            raise ConfigError(f"URL {redact_url(url)}: the path must be a single database name")
        kwargs["database"] = unquote(db)
    for key, raw in _split_query(parts.query):
        if key in kwargs:
            raise ConfigError(
                f"URL {redact_url(url)}: parameter {key!r} is given twice", option=key
            )
        if key not in POOL_OPTION_NAMES and key not in CONNECT_PARAMS:
            raise ConfigError(
                f"URL {redact_url(url)}: unknown parameter {key!r}{_suggest(key)}", option=key
            )
        kwargs[key] = convert_option(key, raw, url)
    if not kwargs.get("host") and not kwargs.get("unix_socket"):
        raise ConfigError(f"URL {redact_url(url)}: no host (and no unix_socket parameter)")
    if host_list is not None:  # several servers: the list replaces host and port
        default_port = 3306
        kwargs.pop("host", None)
        kwargs.pop("port", None)
        hosts = [parse_host(h, default_port) for h in host_list]
        if len(set(hosts)) != len(hosts):
            raise ConfigError(f"URL {redact_url(url)}: a host is listed twice", option="hosts")
        kwargs["hosts"] = hosts
    return kwargs


def url_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """``MYSQLPOOL_URL``, else ``DATABASE_URL`` when it is a MySQL URL, else None."""
    env = os.environ if environ is None else environ
    url = env.get("MYSQLPOOL_URL")
    if url:
        return url
    url = env.get("DATABASE_URL")
    if url and urlsplit(url).scheme.lower() in _SCHEMES:
        return url
    return None

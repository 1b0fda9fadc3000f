"""Host-list options are validated when the pool is built; no server needed."""

from __future__ import annotations

import pytest

from mysqlpool_ext import ConfigError, ConnectionPool
from mysqlpool_ext.config import build_options, parse_url


def test_hosts_are_normalised() -> None:
    opts = build_options({"hosts": ["db1:3307", ("db2", 3308), "db3", "[::1]:3309"], "port": 3400})
    assert opts.hosts == (("db1", 3307), ("db2", 3308), ("db3", 3400), ("::1", 3309))
    assert opts.target == "primary"
    assert "host" not in opts.connect_kwargs and "port" not in opts.connect_kwargs


def test_a_single_host_is_unchanged() -> None:
    opts = build_options({"host": "db1", "port": 3307})
    assert opts.hosts is None
    assert opts.connect_kwargs == {"host": "db1", "port": 3307}
    # A target on a single host: a list of one, whose role is checked.
    assert build_options({"host": "db1", "target": "replica"}).hosts == (("db1", 3306),)


def test_url_host_list() -> None:
    kw = parse_url("mysql://u:s3cret@db1:3306,db2:3307/shop?target=prefer-replica")
    assert kw["hosts"] == [("db1", 3306), ("db2", 3307)]
    assert kw["target"] == "prefer-replica"
    assert "host" not in kw


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"hosts": "db1:3306"}, "hosts"),
        ({"hosts": []}, "hosts"),
        ({"hosts": ["db1:x"]}, "hosts"),
        ({"hosts": ["db1:0"]}, "hosts"),
        ({"hosts": ["db1", "db1:3306"]}, "hosts"),
        ({"hosts": ["db1"], "host": "db2"}, "hosts"),
        ({"hosts": [42]}, "hosts"),
        ({"hosts": ["db1"], "target": "writer"}, "target"),
        ({"hosts": ["db1"], "topology_interval": 0}, "topology_interval"),
    ],
)
def test_bad_host_options_name_the_option(kwargs: dict, option: str) -> None:
    with pytest.raises(ConfigError) as info:
        ConnectionPool(lazy=True, password="s3cret", **kwargs)
    assert info.value.option == option
    assert "s3cret" not in str(info.value)


def test_bad_url_host_list_does_not_echo_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        parse_url("mysql://u:s3cret@db1:3306,db2:nope/shop")
    assert "s3cret" not in str(info.value)
    assert info.value.option == "hosts"

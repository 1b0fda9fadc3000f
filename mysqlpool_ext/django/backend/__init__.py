"""``ENGINE: "mysqlpool_ext.django.backend"``: Django's MySQL backend on PyMySQL and our pool.

    DATABASES = {"default": {
        "ENGINE": "mysqlpool_ext.django.backend",
        "HOST": "127.0.0.1", "PORT": 3306, "USER": "app", "PASSWORD": "...", "NAME": "shop",
        "OPTIONS": {"pool": {"max_size": 20, "timeout": 5}},   # or True for the defaults
    }}

The wiring follows Django's own PostgreSQL pool (``OPTIONS["pool"]``, Django >= 5.1):
``get_new_connection`` borrows, ``_close`` gives back, ``close_pool()`` closes, ``CONN_MAX_AGE``
must be 0, and health checks are the pool's. See :mod:`.base` for the details, and
:mod:`mysqlpool_ext.django.middleware` for how a request shares one connection between the ORM
and ``current_pool``.
"""

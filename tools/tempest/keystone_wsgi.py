"""Keystone's public WSGI application for gunicorn (Keystone 30 ships no
``keystone-wsgi-public`` script).

Keystone parses ``sys.argv`` with oslo.config when it initializes; under gunicorn that
is gunicorn's own command line, which Keystone rejects (each worker exits 2). So the
arguments are dropped before Keystone is imported; the configuration comes from
``OS_KEYSTONE_CONFIG_FILES``. This module runs in the Keystone virtualenv the harness
builds, not in volmgr's.
"""

import sys

sys.argv = sys.argv[:1]

from keystone.wsgi.api import application  # noqa: E402

__all__ = ["application"]

"""The Tempest harness: a real Keystone, volmgr-api and volmgr-volume, and Tempest's
volume API tests against them (``tox -e tempest``; see docs/tempest.md)."""

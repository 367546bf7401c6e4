"""The storage side of volmgr: manager daemon, RPC client, drivers and target helpers.

Nothing under this package imports the web framework.
"""

"""volmgr: an asynchronous, message-driven block-volume manager for clouds."""

__version__ = "0.1.0"

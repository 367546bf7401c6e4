"""volmgr: an asynchronous, message-driven block-volume manager for clouds."""

import warnings

__version__ = "0.1.0"

# oslo.messaging imports eventlet, which warns on import that it is deprecated. volmgr
# never uses eventlet (threading executor only), so the warning only alarms operators.
warnings.filterwarnings("ignore", message=r"(?s).*Eventlet is deprecated")

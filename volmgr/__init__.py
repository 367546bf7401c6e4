"""volmgr: an asynchronous, message-driven block-volume manager for clouds."""

import os
import warnings

__version__ = "0.1.0"

# oslo.messaging imports eventlet even though volmgr never uses it (threading executor
# only). Two consequences are worth avoiding in every volmgr process:
# * eventlet's green DNS resolver loads a patched copy of dnspython: ~260 modules and
#   ~15 MiB of resident memory per daemon (measured with tools/bench.py idle);
# * the import warns that eventlet is deprecated, which only alarms operators.
os.environ.setdefault("EVENTLET_NO_GREENDNS", "yes")
warnings.filterwarnings("ignore", message=r"(?s).*Eventlet is deprecated")

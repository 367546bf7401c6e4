"""``volmgr-bench``: volmgr end to end, side by side with bare LVM, in one run.

It starts a real stack (a scratch PostgreSQL database, RabbitMQ, ``volmgr-api`` with N
workers, M ``volmgr-volume`` managers, LVM thick on a loop-device VG with
``activation = 0``) or targets a running API with ``--endpoint``, drives it with a
closed-loop client and prints a table and JSON: latencies, volumes per second, CPU
seconds per operation of every process, RSS, and the same number of bare
``lvcreate``/``lvremove`` on the same VG at the same concurrency with the ratio.

It never passes or fails on time; it prints figures. See docs/performance.md.
"""

"""Options of the ``[volume]``, ``[lvm]``, ``[file]`` and ``[upgrade_levels]`` groups."""

from __future__ import annotations

from oslo_config import cfg

volume_opts = [
    cfg.StrOpt("driver", default="lvm", choices=["lvm", "file"],
               help="Storage driver the volume manager uses."),
    cfg.StrOpt("target_helper", default="tgtadm", choices=["tgtadm", "lioadm", "none"],
               help="How volumes are exported: tgtadm (userspace tgtd), lioadm (kernel LIO "
               "through rtslib-fb) or none (local attach only)."),
    cfg.StrOpt("target_ip_address", default="127.0.0.1",
               help="IP address initiators use to reach this host's iSCSI targets."),
    cfg.PortOpt("target_port", default=3260, help="iSCSI portal port."),
    cfg.StrOpt("target_prefix", default="iqn.2010-10.org.openstack:",
               help="Prefix of every target IQN; the rest is 'volume-<uuid>'."),
    cfg.StrOpt("target_lld", default="iscsi", help="tgtd low-level driver."),
    cfg.StrOpt("root_helper", default="",
               help="Command prefix for privileged commands, e.g. 'sudo'. Empty when the "
               "daemon runs as root."),
    cfg.IntOpt("command_timeout", default=120, min=1,
               help="Seconds a storage command may run before it is killed."),
    cfg.IntOpt("lock_retry_attempts", default=5, min=1,
               help="Times an LVM command that failed on a transient lock error is run "
               "before the error is reported."),
    cfg.IntOpt("tgt_control_port", default=0, min=0, max=32767,
               help="Management port of tgtd ('tgtd -C N', 'tgtadm -C N'); 0 is tgtd's "
               "default. Lets several tgtd instances share a host (tests, multi-backend)."),
    cfg.StrOpt("target_files_dir", default="$state_path/targets",
               help="Directory of the export records: persistent tgt target files (one "
               "per exported volume, mode 0600: they hold the CHAP secret) and, for "
               "lioadm, the ACL records under lio-acl/; ensure_export re-creates targets "
               "from them after the target service or the host restarts."),
    cfg.BoolOpt("target_initiator_acl", default=True,
                help="When true, an export whose attach connector names an initiator "
                "admits only that initiator (plus CHAP); a connector naming none admits "
                "any initiator holding the volume's CHAP credentials. When false, every "
                "export admits any initiator holding the volume's CHAP credentials, "
                "whatever the connector names."),
    cfg.IntOpt("report_interval", default=10, min=1,
               help="Seconds between heartbeats (with capacity) to the services table."),
    cfg.IntOpt("recovery_interval", default=60, min=1,
               help="Seconds between scans for transitional rows that have not moved."),
    cfg.IntOpt("recovery_age", default=30, min=0,
               help="Seconds a row must sit in a transitional state before recovery "
               "re-drives it."),
    cfg.IntOpt("recovery_max_attempts", default=3, min=1,
               help="Times recovery re-drives one request before it gives up and sets the "
               "row to the matching error_* status."),
    cfg.IntOpt("executor_thread_pool_size", default=32, min=1,
               help="Operations on different volumes the manager runs at once. Workers "
               "start as work arrives, so a bound above what the storage can run at once "
               "costs nothing while idle; keep it at or below the database pool "
               "(max_pool_size + max_overflow)."),
    cfg.IntOpt("nice", default=10, min=0, max=19,
               help="Scheduling priority increment volmgr-volume gives itself at start-up "
               "(as nice(1) does); the LVM commands and shells it runs inherit it. Storage "
               "work is background work: on a host that also runs volmgr-api and the "
               "database, API requests then take the cores first. Measured with ten LVM "
               "commands busy on two cores, 10 against 0 halved the API's median and 99th "
               "percentile answer times, throughput within the noise "
               "(docs/performance.md, change 19). 0 leaves the priority alone."),
    cfg.IntOpt("reconcile_interval", default=300, min=0,
               help="Seconds between comparisons of this host's exports and volumes with "
               "the database: missing or drifted exports of attached volumes are "
               "repaired, stale exports removed after reconcile_grace, unexplained "
               "volumes reported (never deleted). 0 turns it off. See "
               "docs/operations.md."),
    cfg.IntOpt("reconcile_grace", default=600, min=0,
               help="Seconds an export no live attachment explains must stay so, seen by "
               "successive reconcile passes, before reconcile removes it."),
    cfg.PortOpt("metrics_port", default=0,
                help="TCP port on which volmgr-volume serves Prometheus metrics at "
                "/metrics; 0 (the default) serves none. See docs/operations.md."),
    cfg.HostAddressOpt("metrics_host", default="127.0.0.1",
                       help="Address the metrics endpoint listens on (metrics_port)."),
    cfg.IntOpt("graceful_shutdown_timeout", default=60, min=0,
               help="Seconds SIGTERM waits for in-flight operations before exiting."),
    cfg.StrOpt("volume_backend_name",
               help="Name of this deployment's storage backend as the Block Storage API "
               "shows it: volume hosts appear as '<host>@<backend>#<backend>' (one pool "
               "per backend, named like it), and volume types may ask for it with the "
               "extra spec 'volume_backend_name'. Default: the driver's name ('lvm' or "
               "'file'). Set the same value on the API and the volume nodes."),
]

lvm_opts = [
    cfg.StrOpt("volume_group", default="volmgr-volumes",
               help="Volume group that holds the volumes."),
    cfg.StrOpt("lvm_type", default="thick", choices=["thick", "thin"],
               help="Provisioning: thick LVs, or thin LVs in a pool inside the VG."),
    cfg.StrOpt("thin_pool_name", default="volmgr-pool",
               help="Name of the thin pool when lvm_type = thin."),
    cfg.StrOpt("lvm_conf", default="",
               help="Path of a private lvm.conf; its directory becomes LVM_SYSTEM_DIR for "
               "every LVM command (e.g. 'global { activation = 0 }' in tests)."),
    cfg.StrOpt("volume_clear", default="zero", choices=["none", "zero"],
               help="How a thick volume is wiped before its LV is removed."),
    cfg.IntOpt("volume_clear_size", default=0, min=0,
               help="MiB to wipe at the start of a volume; 0 wipes all of it."),
    cfg.BoolOpt("lvm_shell", default=False,
                help="Run lvcreate, lvremove, lvextend, lvs and vgs in long-lived 'lvm' "
                "shells instead of a new process each (about half the CPU per command). "
                "Needs volmgr-volume to run as root (no root_helper); the command profile "
                "<LVM system dir>/profile/volmgr-shell.profile is written at start-up "
                "when missing. See docs/performance.md."),
    cfg.IntOpt("lvm_shell_count", default=4, min=1,
               help="LVM shells kept when lvm_shell is true: LVM commands run at once."),
    cfg.StrOpt("device_dir", default="/dev",
               help="Directory under which an active LV appears as "
               "<device_dir>/<volume_group>/<lv name>; the path exported and wiped."),
]

file_opts = [
    cfg.StrOpt("volumes_dir", default="$state_path/volumes",
               help="Directory holding the file driver's sparse image files."),
]

upgrade_opts = [
    cfg.StrOpt("volume", default=None,
               help="Cap on the RPC version the API sends to volume managers, for rolling "
               "upgrades (e.g. '1.0' while some managers are old)."),
]


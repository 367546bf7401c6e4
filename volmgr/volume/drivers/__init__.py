"""The storage drivers: ``lvm`` (``LVMDriver``) and ``file`` (``FileDriver``).

Three modules that are easily confused:

* ``volmgr.volume.driver`` (outside this package) is the interface the manager drives:
  ``VolumeDriver`` and the value objects it receives;
* ``exporting`` holds ``ExportingDriver``, what the LVM and file drivers share: their
  exports go through the configured iSCSI target helper;
* ``loader`` picks the driver and its target helper from the configuration.
"""

"""iSCSI target helpers: how a volume's block device or image is offered to initiators."""

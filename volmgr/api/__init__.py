"""The HTTP face of volmgr: validates, authorizes, records and casts; never touches storage."""

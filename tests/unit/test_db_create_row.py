"""volume_create answers with the complete row without reading it back."""

from __future__ import annotations

import sqlalchemy as sa

from volmgr.db import Database, models


def test_the_created_volume_equals_a_fresh_read_column_by_column(db: Database) -> None:
    created = db.volume_create(project_id="p1", user_id="u1", size=3, display_name="v",
                               metadata={"k": "v"}, host="host1")
    fresh = db.volume_get(created.id)
    for column in sa.inspect(models.Volume).columns:
        key = sa.inspect(models.Volume).get_property_by_column(column).key
        assert getattr(created, key) == getattr(fresh, key), key
    assert created.attachments == [] == fresh.attachments

"""Volume types (with extra specs and access lists), their encryption records, and QoS
specs associated with them.

A type named ``__DEFAULT__`` is created by migration 0004; ``[DEFAULT]
default_volume_type`` names the type a volume gets when it asks for none. A member sees
public types and the private types its project was given access to; an administrator
sees every type. A type some live volume uses cannot be deleted, nor its extra specs or
encryption changed (the volume was made under them).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from oslo_config import cfg
from sqlalchemy import orm
from sqlalchemy.orm import Session

from volmgr import exception, states
from volmgr.db import models
from volmgr.db.core import DatabaseCore, SortOrder, conditional_update, list_live
from volmgr.db.volumes import encrypted_types, get_volume, lock_volume

#: The type every fresh database has (migration 0004), as in the reference service.
DEFAULT_TYPE_NAME = "__DEFAULT__"
#: The extra spec that makes volumes of a type attachable to several servers at once.
MULTIATTACH_SPEC = "multiattach"
#: Extra specs a member may read; the others describe the backend (reference policy).
USER_VISIBLE_EXTRA_SPECS = ("RESKEY:availability_zones", "multiattach",
                            "replication_enabled")
#: QoS consumers: ``front-end`` (the compute host enforces, so the specs go into the
#: connection info), ``back-end`` (the storage enforces) or ``both``.
QOS_CONSUMERS = ("front-end", "back-end", "both")
ALPHABETICAL: SortOrder = (("name", "asc"),)

type_opts = [
    cfg.StrOpt("default_volume_type", default=DEFAULT_TYPE_NAME,
               help="Name of the volume type a volume gets when its create request names "
               "none and its project has no default type of its own (Block Storage v3 "
               "/default-types). Every database has the type __DEFAULT__; a type named "
               "here must exist, or such creates fail with 404."),
]

_volumes = models.table(models.Volume)
_types = models.table(models.VolumeType)
_access = models.table(models.VolumeTypeProject)
_defaults = models.table(models.DefaultVolumeType)


def is_true_spec(value: Any) -> bool:
    """Whether an extra-spec value means true (``"<is> True"``, as the reference writes
    boolean specs; a bare ``"True"`` is accepted too)."""
    if not isinstance(value, str):
        return False
    text = value.strip()
    if text.startswith("<is>"):
        text = text[len("<is>"):].strip()
    return text.lower() == "true"


def is_multiattach(volume_type: models.VolumeType | None) -> bool:
    """Whether volumes of ``volume_type`` may be attached to several servers
    (extra spec ``multiattach`` = ``"<is> True"``)."""
    if volume_type is None:
        return False
    return is_true_spec((volume_type.extra_specs or {}).get(MULTIATTACH_SPEC))


def qos_specs_for(volume_type: models.VolumeType | None) -> dict[str, str] | None:
    """The QoS specs a compute host must enforce for volumes of ``volume_type``: the
    associated specs' key/values when their consumer is ``front-end`` or ``both``, else
    None (no QoS, or the backend enforces it). This is connection_info's ``qos_specs``."""
    if volume_type is None:
        return None
    qos = volume_type.qos_specs
    if qos is None or qos.deleted or qos.consumer not in ("front-end", "both"):
        return None
    return dict(qos.specs or {})


def visible_extra_specs(volume_type: models.VolumeType, is_admin: bool) -> dict[str, str]:
    """The extra specs the caller may read: all for admins, the user-visible ones else."""
    specs = dict(volume_type.extra_specs or {})
    if is_admin:
        return specs
    return {key: value for key, value in specs.items() if key in USER_VISIBLE_EXTRA_SPECS}


# -- Session helpers ------------------------------------------------------------------


def _access_clause(project_id: str | sa.BindParameter[str]) -> sa.ColumnElement[bool]:
    """Public, or private with ``project_id`` on its access list."""
    return sa.or_(models.VolumeType.is_public == sa.true(), sa.exists().where(
        _access.c.volume_type_id == models.VolumeType.id,
        _access.c.project_id == project_id))


@functools.cache
def _type_statement(kind: str, scoped: bool) -> sa.Select[Any]:
    """A live type, built once per shape (building a statement costs more CPU than
    running it). ``kind`` "id" or "name" (parameter ``key``), or "default" (parameters
    ``project_id`` and ``default_name``: the project's own default type, else the
    configured one, which sorts last); ``scoped`` adds the access check for the project
    in parameter ``scope``."""
    volume_type = models.VolumeType
    if kind == "default":
        defaults = models.DefaultVolumeType
        query = (sa.select(volume_type).outerjoin(defaults, sa.and_(
                     defaults.volume_type_id == volume_type.id,
                     defaults.project_id == sa.bindparam("project_id")))
                 .where(volume_type.deleted == sa.false(),
                        sa.or_(defaults.project_id.is_not(None),
                               volume_type.name == sa.bindparam("default_name")))
                 .order_by(sa.case((defaults.project_id.is_not(None), 0), else_=1)))
    else:
        column = volume_type.id if kind == "id" else volume_type.name
        query = sa.select(volume_type).where(column == sa.bindparam("key"),
                                             volume_type.deleted == sa.false())
    if scoped:
        query = query.where(_access_clause(sa.bindparam("scope")))
    return query.limit(1)


@functools.cache
def _choose_statement(kind: str, scoped: bool) -> sa.Select[Any]:
    """``_type_statement`` plus whether the type has an encryption record, without its
    QoS specs (reading them raises): what a create needs, in one statement."""
    encrypted = sa.exists().where(
        models.Encryption.volume_type_id == models.VolumeType.id,
        models.Encryption.deleted == sa.false()).label("encrypted")
    return (_type_statement(kind, scoped).add_columns(encrypted)
            .options(orm.raiseload(models.VolumeType.qos_specs)))


def get_type(session: Session, type_id: str, *, project_id: str | None = None,
             lock: bool = False) -> models.VolumeType:
    """A live type by id; with ``project_id``, only if that project may see it."""
    query = _type_statement("id", project_id is not None)
    if lock:
        query = query.with_for_update()
    volume_type = session.execute(query, {"key": type_id, "scope": project_id}
                                  ).scalar_one_or_none()
    if volume_type is None:
        raise exception.VolumeTypeNotFound(volume_type_id=type_id)
    return volume_type


def get_type_by_name(session: Session, name: str, *,
                     project_id: str | None = None) -> models.VolumeType | None:
    return session.execute(_type_statement("name", project_id is not None),
                           {"key": name, "scope": project_id}).scalar_one_or_none()


def _name_taken(session: Session, name: str, but: str | None = None) -> bool:
    query = sa.select(_types.c.id).where(_types.c.name == name,
                                         _types.c.deleted == sa.false())
    if but is not None:
        query = query.where(_types.c.id != but)
    return session.execute(query.limit(1)).first() is not None


def type_in_use(session: Session, type_id: str) -> bool:
    """Whether any live volume was made with the type."""
    return session.execute(sa.select(_volumes.c.id).where(
        _volumes.c.volume_type_id == type_id,
        _volumes.c.deleted == sa.false()).limit(1)).first() is not None


def _refuse_if_in_use(session: Session, type_id: str, what: str) -> None:
    if type_in_use(session, type_id):
        raise exception.VolumeTypeInUse(
            f"Volume type {type_id} is in use by a volume; its {what} cannot change.",
            volume_type_id=type_id)


def get_encryption(session: Session, type_id: str) -> models.Encryption | None:
    return session.execute(sa.select(models.Encryption).where(
        models.Encryption.volume_type_id == type_id,
        models.Encryption.deleted == sa.false())).scalars().first()


def get_qos(session: Session, qos_id: str, *, lock: bool = False,
            ) -> models.QualityOfServiceSpecs:
    query = sa.select(models.QualityOfServiceSpecs).where(
        models.QualityOfServiceSpecs.id == qos_id,
        models.QualityOfServiceSpecs.deleted == sa.false())
    if lock:
        query = query.with_for_update()
    qos = session.execute(query).scalar_one_or_none()
    if qos is None:
        raise exception.QoSSpecsNotFound(qos_specs_id=qos_id)
    return qos


def _types_with_qos(session: Session, qos_id: str) -> list[models.VolumeType]:
    return list(session.execute(sa.select(models.VolumeType).where(
        models.VolumeType.qos_specs_id == qos_id,
        models.VolumeType.deleted == sa.false()).order_by(models.VolumeType.name)).scalars())


def _soft_delete(row: Any) -> None:
    row.deleted = True
    row.deleted_at = models.utcnow()


class TypeQueries(DatabaseCore):
    """Volume types, extra specs, access lists, encryption records and QoS specs."""

    #: ``[DEFAULT] default_volume_type``; ``Database.from_conf`` sets it.
    default_volume_type: str = DEFAULT_TYPE_NAME

    # -- What volume create and the volume views use ----------------------------------

    def volume_type_resolve(self, name_or_id: str | None, *, project_id: str,
                            is_admin: bool) -> models.VolumeType:
        """The type a new volume gets: ``name_or_id`` (an id, else a name), or the
        default type when None. Unknown types, and private types the project has no
        access to (for non-admins), raise ``VolumeTypeNotFound``."""
        def work(session: Session) -> models.VolumeType:
            if name_or_id is None:
                return self._default_type(session, project_id)
            scope = None if is_admin else project_id
            try:
                return get_type(session, name_or_id, project_id=scope)
            except exception.VolumeTypeNotFound:
                found = get_type_by_name(session, name_or_id, project_id=scope)
                if found is None:
                    raise
                return found
        return self.run(work)

    def volume_type_choose(self, name_or_id: str | None, *, project_id: str,
                           is_admin: bool) -> tuple[models.VolumeType, bool]:
        """``volume_type_resolve`` and whether the type is encrypted (what a create
        needs: the type for the row, the flag for the reply), in one statement on the
        common paths: the flag is a column of the type's query and the type's QoS specs
        are not loaded (a create does not use them; reading them raises). The
        statements are built once (``_choose_statement``)."""
        def first(session: Session, kind: str, scope: str | None,
                  params: Mapping[str, str | None]) -> tuple[Any, bool] | None:
            row = session.execute(_choose_statement(kind, scope is not None),
                                  {**params, "scope": scope}).first()
            return None if row is None else (row[0], bool(row[1]))

        def work(session: Session) -> tuple[models.VolumeType, bool]:
            if name_or_id is None:
                found = first(session, *self._default_lookup(project_id))
                if found is None:
                    raise self._default_missing()
                return found
            scope = None if is_admin else project_id
            found = (first(session, "id", scope, {"key": name_or_id})
                     or first(session, "name", scope, {"key": name_or_id}))
            if found is None:
                raise exception.VolumeTypeNotFound(volume_type_id=name_or_id)
            return found
        return self.run(work)

    def volume_type_default(self, project_id: str | None = None) -> models.VolumeType:
        """The default type: ``project_id``'s own (``/default-types``) if it has one, else
        ``[DEFAULT] default_volume_type``; ``VolumeTypeNotFound`` when the configured
        type does not exist."""
        return self.run(lambda session: self._default_type(session, project_id))

    def _default_lookup(self, project_id: str | None
                        ) -> tuple[str, None, dict[str, str | None]]:
        """How to find the default type (``_type_statement`` kind, scope, parameters):
        the project's own if it has one, else the configured one."""
        if project_id:
            return "default", None, {"project_id": project_id,
                                      "default_name": self.default_volume_type}
        return "name", None, {"key": self.default_volume_type}

    def _default_missing(self) -> exception.VolumeTypeNotFound:
        return exception.VolumeTypeNotFound(
            f"Default volume type {self.default_volume_type!r} "
            f"([DEFAULT] default_volume_type) could not be found.",
            volume_type_id=self.default_volume_type)

    def _default_type(self, session: Session, project_id: str | None) -> models.VolumeType:
        kind, _, params = self._default_lookup(project_id)
        found = session.execute(_type_statement(kind, False), params).scalar_one_or_none()
        if found is None:
            raise self._default_missing()
        return found

    def volume_type_get(self, type_id: str) -> models.VolumeType:
        """A live type by id, whatever its visibility (404 when missing)."""
        return self.run(lambda s: get_type(s, type_id))

    def volume_types_encrypted(self, ids: Iterable[str | None]) -> set[str]:
        """Which of the type ids have an encryption record (a volume view's
        ``encrypted``)."""
        wanted = [type_id for type_id in ids if type_id]
        return self.run(lambda session: encrypted_types(session, wanted)) if wanted else set()

    # -- Types ------------------------------------------------------------------------

    def volume_type_show(self, type_id: str, *, project_id: str,
                         is_admin: bool) -> models.VolumeType:
        """A type the caller may see (admins: any live type); else 404."""
        scope = None if is_admin else project_id
        return self.run(lambda s: get_type(s, type_id, project_id=scope))

    def volume_type_list(self, *, project_id: str, is_admin: bool,
                         is_public: bool | None = True,
                         filters: Mapping[str, Any] | None = None,
                         extra_specs: Mapping[str, str] | None = None,
                         limit: int | None = None, marker: str | None = None,
                         offset: int = 0, sort: SortOrder = ALPHABETICAL,
                         ) -> list[models.VolumeType]:
        """The types the caller may see, in ``sort`` order.

        ``is_public`` True (what members always get): public types plus the private
        types ``project_id`` has access to; False: private types only; None: every type
        (admins only, as the reference service). ``extra_specs`` keeps types whose
        specs hold every given key/value; ``marker`` is the previous page's last id."""
        wanted_specs = dict(extra_specs or {})
        if not is_admin:
            is_public = True

        def work(session: Session) -> list[models.VolumeType]:
            conditions: list[sa.ColumnElement[bool]] = []
            if is_public:
                conditions.append(_access_clause(project_id))
            elif is_public is not None:
                conditions.append(models.VolumeType.is_public == sa.false())
            anchor = None
            if marker:
                anchor = get_type(session, marker,
                                  project_id=None if is_admin else project_id)
            row_filter = None
            if wanted_specs:
                def row_filter(row: Any) -> bool:
                    specs = row.extra_specs or {}
                    return all(specs.get(k) == v for k, v in wanted_specs.items())
            return _list_types(session, conditions, filters=filters, anchor=anchor,
                               limit=limit, offset=offset, sort=sort,
                               row_filter=row_filter)
        return self.run(work)

    def volume_type_create(self, name: str, *, description: str | None = None,
                           is_public: bool = True,
                           extra_specs: Mapping[str, str] | None = None,
                           ) -> models.VolumeType:
        """A new type; ``VolumeTypeExists`` when a live type has the name."""
        def work(session: Session) -> models.VolumeType:
            if _name_taken(session, name):
                raise exception.VolumeTypeExists(name=name)
            volume_type = models.VolumeType(
                name=name, description=description, is_public=is_public,
                extra_specs=dict(extra_specs or {}), deleted=False)
            session.add(volume_type)
            session.flush()
            session.refresh(volume_type)
            return volume_type
        return self.run(work)

    def volume_type_update(self, type_id: str, *, name: str | None = None,
                           description: str | None = None,
                           is_public: bool | None = None) -> models.VolumeType:
        """Rename, describe or publish/unpublish a type (None leaves a field as is; an
        empty description clears it). The default type keeps its name."""
        def work(session: Session) -> models.VolumeType:
            volume_type = get_type(session, type_id, lock=True)
            if name is not None and name != volume_type.name:
                if volume_type.name in (DEFAULT_TYPE_NAME, self.default_volume_type):
                    raise exception.InvalidVolumeType(
                        reason=f"the default volume type {volume_type.name!r} cannot be "
                        f"renamed")
                if _name_taken(session, name, but=type_id):
                    raise exception.VolumeTypeExists(name=name)
                volume_type.name = name
            if description is not None:
                volume_type.description = description
            if is_public is not None:
                volume_type.is_public = is_public
            volume_type.updated_at = models.utcnow()
            session.flush()
            session.refresh(volume_type)
            return volume_type
        return self.run(work)

    def volume_type_delete(self, type_id: str) -> None:
        """Soft-delete a type with its access list and encryption record. Refused
        (``InvalidVolumeType``) for the default type and while a live volume uses it."""
        def work(session: Session) -> None:
            volume_type = get_type(session, type_id, lock=True)
            if volume_type.name in (DEFAULT_TYPE_NAME, self.default_volume_type):
                raise exception.InvalidVolumeType(
                    reason=f"the default volume type {volume_type.name!r} cannot be "
                    f"deleted")
            if type_in_use(session, type_id):
                raise exception.VolumeTypeInUse(
                    f"Volume type {type_id} is still in use by a volume.",
                    volume_type_id=type_id)
            if session.execute(sa.select(_defaults.c.project_id).where(
                    _defaults.c.volume_type_id == type_id).limit(1)).first() is not None:
                raise exception.InvalidVolumeType(
                    reason=f"volume type {type_id} is the default type of a project; "
                    f"unset it (/default-types) first")
            _soft_delete(volume_type)
            session.execute(sa.delete(_access).where(_access.c.volume_type_id == type_id))
            encryption = get_encryption(session, type_id)
            if encryption is not None:
                _soft_delete(encryption)
        self.run(work)

    def volume_retype(self, volume_id: str, type_id: str, *,
                      project_id: str | None) -> models.Volume:
        """Give a volume another type, in place (volmgr never migrates): the volume is
        ``available`` or ``in-use`` (``VolumeStatusConflict`` else); the type differs
        from its own; multiattach changes only while ``available``; an ``in-use``
        volume keeps its front-end QoS; encryption cannot change (``InvalidVolume``)."""
        def work(session: Session) -> models.Volume:
            lock_volume(session, volume_id)
            volume = get_volume(session, volume_id, project_id)
            new = get_type(session, type_id)
            allowed = (states.AVAILABLE, states.IN_USE)
            if volume.status not in allowed or volume.migration_status not in (
                    None, "", "success", "error"):
                raise exception.VolumeStatusConflict(
                    volume_id=volume_id, status=volume.status, expected=", ".join(allowed))
            if volume.volume_type_id == new.id:
                raise exception.InvalidVolume(
                    reason=f"volume {volume_id} already has volume type {new.name}; a "
                    f"retype needs a different type")
            old = session.execute(sa.select(models.VolumeType).where(
                models.VolumeType.id == volume.volume_type_id)).scalar_one_or_none() \
                if volume.volume_type_id else None
            multiattach = is_multiattach(new)
            if multiattach != bool(volume.multiattach) and volume.status != states.AVAILABLE:
                raise exception.InvalidVolume(
                    reason=f"retypes affecting multiattach are only allowed on available "
                    f"volumes; volume {volume_id} is {volume.status}")
            if volume.status == states.IN_USE and qos_specs_for(old) != qos_specs_for(new):
                raise exception.InvalidVolume(
                    reason=f"volume {volume_id} is in-use and its front-end QoS specs "
                    f"would change; detach it first")
            old_encryption = get_encryption(session, old.id) if old is not None else None
            new_encryption = get_encryption(session, new.id)
            if (old_encryption is None) != (new_encryption is None):
                raise exception.InvalidVolume(
                    reason="a retype that adds or removes encryption needs a migration, "
                    "which this service does not do")
            if not conditional_update(
                    session, models.Volume, volume_id,
                    {"volume_type": new.name, "volume_type_id": new.id,
                     "multiattach": multiattach}, expected_status=(volume.status,)):
                raise exception.VolumeStatusConflict(
                    volume_id=volume_id, status=volume.status, expected=", ".join(allowed))
            session.refresh(volume)
            return volume
        return self.run(work)

    # -- Project default types (/default-types, 3.62) ---------------------------------

    def default_type_set(self, project_id: str, type_id: str) -> models.DefaultVolumeType:
        """Make a live type ``project_id``'s default (replacing the one it had)."""
        def work(session: Session) -> models.DefaultVolumeType:
            get_type(session, type_id)
            row = session.execute(sa.select(models.DefaultVolumeType).where(
                models.DefaultVolumeType.project_id == project_id).with_for_update()
            ).scalar_one_or_none()
            if row is None:
                row = models.DefaultVolumeType(project_id=project_id, volume_type_id=type_id)
                session.add(row)
            else:
                row.volume_type_id = type_id
                row.updated_at = models.utcnow()
            session.flush()
            return row
        return self.run(work)

    def default_type_get(self, project_id: str) -> models.DefaultVolumeType:
        """``project_id``'s own default type (``VolumeTypeProjectDefaultNotFound``)."""
        def work(session: Session) -> models.DefaultVolumeType:
            row = session.get(models.DefaultVolumeType, project_id)
            if row is None:
                raise exception.VolumeTypeProjectDefaultNotFound(project_id=project_id)
            return row
        return self.run(work)

    def default_type_list(self) -> list[models.DefaultVolumeType]:
        return self.run(lambda session: list(session.execute(
            sa.select(models.DefaultVolumeType).order_by(
                models.DefaultVolumeType.project_id)).scalars()))

    def default_type_unset(self, project_id: str) -> None:
        """Forget ``project_id``'s own default type (nothing happens if it has none)."""
        def work(session: Session) -> None:
            session.execute(sa.delete(_defaults).where(_defaults.c.project_id == project_id))
        self.run(work)

    # -- Extra specs ------------------------------------------------------------------

    def volume_type_extra_specs_set(self, type_id: str,
                                    specs: Mapping[str, str]) -> dict[str, str]:
        """Add or overwrite extra specs; refused while a live volume uses the type."""
        def work(session: Session) -> dict[str, str]:
            volume_type = get_type(session, type_id, lock=True)
            _refuse_if_in_use(session, type_id, "extra specs")
            merged = dict(volume_type.extra_specs or {})
            merged.update(specs)
            volume_type.extra_specs = merged
            volume_type.updated_at = models.utcnow()
            return merged
        return self.run(work)

    def volume_type_extra_spec_delete(self, type_id: str, key: str) -> None:
        """Remove one extra spec (404 when absent); refused while the type is in use."""
        def work(session: Session) -> None:
            volume_type = get_type(session, type_id, lock=True)
            specs = dict(volume_type.extra_specs or {})
            if key not in specs:
                raise exception.VolumeTypeExtraSpecsNotFound(
                    volume_type_id=type_id, extra_specs_key=key)
            _refuse_if_in_use(session, type_id, "extra specs")
            del specs[key]
            volume_type.extra_specs = specs
            volume_type.updated_at = models.utcnow()
        self.run(work)

    # -- Access lists -----------------------------------------------------------------

    def volume_type_access_list(self, type_id: str) -> list[str]:
        """Projects with access to a private type; a public type has no list (404)."""
        def work(session: Session) -> list[str]:
            volume_type = get_type(session, type_id)
            if volume_type.is_public:
                raise exception.VolumeTypeAccessNotFound(
                    "Access list not available for public volume types.",
                    volume_type_id=type_id)
            return list(session.execute(sa.select(_access.c.project_id).where(
                _access.c.volume_type_id == type_id).order_by(_access.c.id)).scalars())
        return self.run(work)

    def volume_type_access_add(self, type_id: str, project_id: str) -> None:
        """Give ``project_id`` access; ``VolumeTypeAccessExists`` when it has it, and
        ``InvalidVolumeType`` for a public type (everyone has access)."""
        def work(session: Session) -> None:
            volume_type = get_type(session, type_id, lock=True)
            if volume_type.is_public:
                raise exception.InvalidVolumeType(
                    reason=f"volume type {type_id} is public; access lists are for "
                    f"private types")
            exists = session.execute(sa.select(_access.c.id).where(
                _access.c.volume_type_id == type_id,
                _access.c.project_id == project_id)).first()
            if exists is not None:
                raise exception.VolumeTypeAccessExists(volume_type_id=type_id,
                                                       project_id=project_id)
            session.execute(sa.insert(_access).values(volume_type_id=type_id,
                                                      project_id=project_id))
        self.run(work)

    def volume_type_access_remove(self, type_id: str, project_id: str) -> None:
        """Withdraw ``project_id``'s access (404 when it had none; ``InvalidVolumeType``
        for a public type)."""
        def work(session: Session) -> None:
            if get_type(session, type_id, lock=True).is_public:
                raise exception.InvalidVolumeType(
                    reason=f"volume type {type_id} is public; access lists are for "
                    f"private types")
            removed = session.execute(sa.delete(_access).where(
                _access.c.volume_type_id == type_id, _access.c.project_id == project_id))
            if not removed.rowcount:  # type: ignore[attr-defined]
                raise exception.VolumeTypeAccessNotFound(volume_type_id=type_id,
                                                         project_id=project_id)
        self.run(work)

    # -- Encryption records -----------------------------------------------------------

    def encryption_get(self, type_id: str) -> models.Encryption | None:
        """The type's encryption record, None when it has none (404: no such type)."""
        def work(session: Session) -> models.Encryption | None:
            get_type(session, type_id)
            return get_encryption(session, type_id)
        return self.run(work)

    def encryption_create(self, type_id: str, values: Mapping[str, Any]) -> models.Encryption:
        """Record how volumes of the type are encrypted (``provider``, ``cipher``,
        ``key_size``, ``control_location``). Refused while the type is in use or when it
        has a record already."""
        def work(session: Session) -> models.Encryption:
            get_type(session, type_id, lock=True)
            _refuse_if_in_use(session, type_id, "encryption")
            if get_encryption(session, type_id) is not None:
                raise exception.VolumeTypeEncryptionExists(volume_type_id=type_id)
            encryption = models.Encryption(volume_type_id=type_id, deleted=False,
                                           **dict(values))
            session.add(encryption)
            session.flush()
            session.refresh(encryption)
            return encryption
        return self.run(work)

    def encryption_update(self, type_id: str, values: Mapping[str, Any]) -> models.Encryption:
        """Change the type's encryption record (404 when it has none); refused while
        the type is in use."""
        def work(session: Session) -> models.Encryption:
            get_type(session, type_id, lock=True)
            _refuse_if_in_use(session, type_id, "encryption")
            encryption = get_encryption(session, type_id)
            if encryption is None:
                raise exception.VolumeTypeEncryptionNotFound(volume_type_id=type_id)
            for key, value in values.items():
                setattr(encryption, key, value)
            encryption.updated_at = models.utcnow()
            session.flush()
            session.refresh(encryption)
            return encryption
        return self.run(work)

    def encryption_delete(self, type_id: str) -> None:
        """Remove the type's encryption record (404 when none); refused while in use."""
        def work(session: Session) -> None:
            get_type(session, type_id, lock=True)
            encryption = get_encryption(session, type_id)
            if encryption is None:
                raise exception.VolumeTypeEncryptionNotFound(volume_type_id=type_id)
            _refuse_if_in_use(session, type_id, "encryption")
            _soft_delete(encryption)
        self.run(work)

    # -- QoS specs --------------------------------------------------------------------

    def qos_specs_create(self, name: str, *, consumer: str = "back-end",
                         specs: Mapping[str, str] | None = None,
                         ) -> models.QualityOfServiceSpecs:
        """New QoS specs; ``QoSSpecsExists`` when live specs have the name."""
        def work(session: Session) -> models.QualityOfServiceSpecs:
            taken = session.execute(sa.select(models.QualityOfServiceSpecs.id).where(
                models.QualityOfServiceSpecs.name == name,
                models.QualityOfServiceSpecs.deleted == sa.false()).limit(1)).first()
            if taken is not None:
                raise exception.QoSSpecsExists(name=name)
            qos = models.QualityOfServiceSpecs(name=name, consumer=consumer,
                                               specs=dict(specs or {}), deleted=False)
            session.add(qos)
            session.flush()
            session.refresh(qos)
            return qos
        return self.run(work)

    def qos_specs_get(self, qos_id: str) -> models.QualityOfServiceSpecs:
        return self.run(lambda s: get_qos(s, qos_id))

    def qos_specs_list(self, *, filters: Mapping[str, Any] | None = None,
                       limit: int | None = None, marker: str | None = None,
                       offset: int = 0, sort: SortOrder = (("created_at", "desc"),),
                       ) -> list[models.QualityOfServiceSpecs]:
        def work(session: Session) -> list[models.QualityOfServiceSpecs]:
            anchor = get_qos(session, marker) if marker else None
            return list_live(session, models.QualityOfServiceSpecs, project_id=None,
                             filters=filters, anchor=anchor, limit=limit, offset=offset,
                             sort=sort)
        return self.run(work)

    def qos_specs_set(self, qos_id: str, *, consumer: str | None = None,
                      specs: Mapping[str, str] | None = None,
                      ) -> models.QualityOfServiceSpecs:
        """Add or overwrite keys (and change the consumer when given)."""
        def work(session: Session) -> models.QualityOfServiceSpecs:
            qos = get_qos(session, qos_id, lock=True)
            if consumer is not None:
                qos.consumer = consumer
            if specs:
                merged = dict(qos.specs or {})
                merged.update(specs)
                qos.specs = merged
            qos.updated_at = models.utcnow()
            return qos
        return self.run(work)

    def qos_specs_delete_keys(self, qos_id: str, keys: Iterable[str]) -> None:
        """Remove keys; ``QoSSpecsKeyNotFound`` (nothing removed) if one is absent."""
        wanted = list(keys)

        def work(session: Session) -> None:
            qos = get_qos(session, qos_id, lock=True)
            specs = dict(qos.specs or {})
            for key in wanted:
                if key not in specs:
                    raise exception.QoSSpecsKeyNotFound(qos_specs_id=qos_id, key=key)
                del specs[key]
            qos.specs = specs
            qos.updated_at = models.utcnow()
        self.run(work)

    def qos_specs_delete(self, qos_id: str, *, force: bool = False) -> None:
        """Delete QoS specs. Associated with types: refused (``QoSSpecsInUse``) unless
        ``force``, which disassociates them first."""
        def work(session: Session) -> None:
            qos = get_qos(session, qos_id, lock=True)
            associated = _types_with_qos(session, qos_id)
            if associated and not force:
                raise exception.QoSSpecsInUse(qos_specs_id=qos_id)
            for volume_type in associated:
                volume_type.qos_specs_id = None
            _soft_delete(qos)
        self.run(work)

    def qos_specs_associations(self, qos_id: str) -> list[models.VolumeType]:
        """The live types associated with the QoS specs."""
        def work(session: Session) -> list[models.VolumeType]:
            get_qos(session, qos_id)
            return _types_with_qos(session, qos_id)
        return self.run(work)

    def qos_specs_associate(self, qos_id: str, type_id: str) -> None:
        """Tie the QoS specs to a type; ``InvalidVolumeType`` when the type already has
        other specs (disassociate them first)."""
        def work(session: Session) -> None:
            get_qos(session, qos_id)
            volume_type = get_type(session, type_id, lock=True)
            if volume_type.qos_specs_id not in (None, qos_id):
                raise exception.InvalidVolumeType(
                    reason=f"volume type {type_id} is already associated with QoS specs "
                    f"{volume_type.qos_specs_id}")
            volume_type.qos_specs_id = qos_id
        self.run(work)

    def qos_specs_disassociate(self, qos_id: str, type_id: str) -> None:
        """Untie the QoS specs from a type (a no-op if they were not tied)."""
        def work(session: Session) -> None:
            get_qos(session, qos_id)
            volume_type = get_type(session, type_id, lock=True)
            if volume_type.qos_specs_id == qos_id:
                volume_type.qos_specs_id = None
        self.run(work)

    def qos_specs_disassociate_all(self, qos_id: str) -> None:
        def work(session: Session) -> None:
            get_qos(session, qos_id)
            session.execute(sa.update(_types).where(
                _types.c.qos_specs_id == qos_id).values(qos_specs_id=None))
        self.run(work)


def _list_types(session: Session, conditions: list[sa.ColumnElement[bool]], *,
                filters: Mapping[str, Any] | None, anchor: Any, limit: int | None,
                offset: int, sort: SortOrder, row_filter: Any,
                ) -> list[models.VolumeType]:
    """``list_live`` over the visible types: the visibility clause becomes a filter on
    ids so that keyset paging and sorting stay the shared implementation's."""
    if conditions:
        visible = sa.select(models.VolumeType.id).where(
            models.VolumeType.deleted == sa.false(), *conditions)
        ids = list(session.execute(visible).scalars())
        scoped = dict(filters or {})
        scoped["id"] = ids
    else:
        scoped = dict(filters or {})
    return list_live(session, models.VolumeType, project_id=None, filters=scoped,
                     anchor=anchor, limit=limit, offset=offset, sort=sort,
                     row_filter=row_filter)

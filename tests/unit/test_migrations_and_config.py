"""Schema migrations, the generated sample config, and the oslo.messaging workaround."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest
import sqlalchemy as sa
from oslo_config import cfg

from volmgr import config, rpc
from volmgr.cmd import manage
from volmgr.db import engine as engine_mod
from volmgr.db import migration

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _sqlite_conf(tmp_path) -> str:
    path = tmp_path / "volmgr.conf"
    path.write_text(f"[database]\nconnection = sqlite:///{tmp_path}/db.sqlite\n")
    return str(path)


def test_db_sync_creates_the_schema_and_is_harmless_twice(tmp_path, capsys) -> None:
    conf_file = _sqlite_conf(tmp_path)
    assert manage.main(["--config-file", conf_file, "db", "sync"]) == 0
    assert manage.main(["--config-file", conf_file, "db", "sync"]) == 0
    assert manage.main(["--config-file", conf_file, "db", "check"]) == 0
    assert "matches the models" in capsys.readouterr().out
    tables = sa.inspect(sa.create_engine(f"sqlite:///{tmp_path}/db.sqlite")).get_table_names()
    assert {"volumes", "volume_attachments", "snapshots", "services",
            "quota_usages"} <= set(tables)


def test_db_check_fails_on_an_unmigrated_database(tmp_path, capsys) -> None:
    assert manage.main(["--config-file", _sqlite_conf(tmp_path), "db", "check"]) == 1
    assert "drift" in capsys.readouterr().err


def test_migrations_round_trip_down_then_up(tmp_path) -> None:
    engine = engine_mod.create_engine(f"sqlite:///{tmp_path}/rt.sqlite")
    migration.upgrade(engine)
    migration.downgrade(engine, "base")
    assert migration.current_revision(engine) is None
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    migration.upgrade(engine)
    assert migration.drift(engine) == []


def test_sample_config_is_current(tmp_path) -> None:
    generated = tmp_path / "volmgr.conf.sample"
    subprocess.run(
        [sys.executable, "-m", "oslo_config.generator", "--config-file",
         os.path.join(ROOT, "etc/volmgr/volmgr-config-generator.conf"),
         "--output-file", str(generated)],
        check=True, cwd=ROOT, capture_output=True)
    with open(os.path.join(ROOT, "etc/volmgr/volmgr.conf.sample")) as committed:
        assert generated.read_text() == committed.read(), (
            "etc/volmgr/volmgr.conf.sample is stale: run 'tox -e genconfig'")


def test_configuration_reference_is_current() -> None:
    from tools import config_reference
    from volmgr import opts

    with open(os.path.join(ROOT, "docs/configuration.md"), encoding="utf-8") as committed:
        assert config_reference.render(opts.list_opts()) == committed.read(), (
            "docs/configuration.md is stale: run 'tox -e genconfig'")


def test_every_option_has_help() -> None:
    from volmgr import opts
    for group, options in opts.list_opts():
        for opt in options:
            assert opt.help, f"[{group}] {opt.name} has no help"


def test_private_conf_reads_config_files(tmp_path) -> None:
    path = tmp_path / "volmgr.conf"
    path.write_text("[DEFAULT]\nhost = node7\n[volume]\ndriver = file\n")
    conf = config.parse_args(["--config-file", str(path)])
    assert (conf.host, conf.volume.driver) == ("node7", "file")
    assert cfg.CONF is not conf


def _cast_over_fake_transport(conf: cfg.ConfigOpts) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import oslo_messaging as messaging
    transport = messaging.get_rpc_transport(conf, url="fake://")
    client = messaging.get_rpc_client(transport, messaging.Target(topic="t", server="s"))
    client.cast({}, "ping")
    transport.cleanup()


def test_oslo_messaging_still_needs_the_option_workaround() -> None:
    """When this fails, oslo.messaging registers its tracing/metrics options on a private
    conf by itself and volmgr.rpc._register_missing_messaging_opts can go."""
    with pytest.raises(cfg.NoSuchOptError):
        _cast_over_fake_transport(cfg.ConfigOpts())


def test_casts_work_on_a_private_conf_with_the_workaround() -> None:
    conf = cfg.ConfigOpts()
    rpc.prepare_conf(conf)
    _cast_over_fake_transport(conf)


def test_commands_on_a_database_never_synced_say_how_to_fix_it(tmp_path, capsys) -> None:
    conf_file = _sqlite_conf(tmp_path)
    assert manage.main(["--config-file", conf_file, "service", "list"]) == 1
    err = capsys.readouterr().err
    assert "run 'volmgr-manage db sync'" in err and "Traceback" not in err
    assert not os.path.exists(tmp_path / "db.sqlite"), "a read-only command created a file"


def test_commands_on_an_empty_database_say_how_to_fix_it(tmp_path, capsys) -> None:
    conf_file = _sqlite_conf(tmp_path)
    engine_mod.create_engine(f"sqlite:///{tmp_path}/db.sqlite").dispose()
    sa.create_engine(f"sqlite:///{tmp_path}/db.sqlite").connect().close()
    assert manage.main(["--config-file", conf_file, "volume", "list"]) == 1
    assert "no volmgr schema" in capsys.readouterr().err
    assert manage.main(["--config-file", conf_file, "db", "check"]) == 1
    assert capsys.readouterr().err.count("\n") == 1

"""volmgr-all's embedded defaults and how it fails when it cannot start."""

from __future__ import annotations

import socket

import pytest

from volmgr.cmd import all as all_in_one


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_embedded_defaults_need_no_config_file(tmp_path, monkeypatch, closed_port) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    conf_file = tmp_path / "volmgr.conf"
    conf_file.write_text(f"[volume]\ntarget_port = {closed_port}\n")
    conf = all_in_one.build_conf(["--config-file", str(conf_file)])
    assert conf.state_path == str(tmp_path / "volmgr")
    assert conf.transport_url == "fake://"
    assert conf.volume.driver == "file"
    assert conf.volume.target_helper == "none"  # no tgtd answers on that port
    assert conf.database.connection == f"sqlite:///{tmp_path}/volmgr/volmgr.sqlite"
    assert (conf.api.bind_host, conf.api.bind_port) == ("127.0.0.1", 8776)


def test_an_operators_target_helper_wins_over_detection(tmp_path, monkeypatch,
                                                        closed_port) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    conf_file = tmp_path / "volmgr.conf"
    conf_file.write_text(f"[volume]\ntarget_helper = tgtadm\ntarget_port = {closed_port}\n")
    conf = all_in_one.build_conf(["--config-file", str(conf_file)])
    assert conf.volume.target_helper == "tgtadm"


def test_the_demo_listens_on_a_free_port(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert all_in_one.build_conf(["--demo"]).api.bind_port == 0


def test_a_busy_port_is_one_clear_line_and_creates_no_state(tmp_path, monkeypatch,
                                                            capsys) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        conf_file = tmp_path / "volmgr.conf"
        conf_file.write_text(f"[api]\nbind_port = {port}\n")
        assert all_in_one.main(["--config-file", str(conf_file)]) == 1
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err
    assert not (tmp_path / "volmgr").exists()

"""Settings from the environment: the secret key made once and kept, so a restart signs nobody out."""

from __future__ import annotations

import stat

from webui.config import ensure_secret_key


def test_without_a_configured_key_one_is_made_once_and_kept_for_the_owner_only(tmp_path):
    first, second = {}, {}
    ensure_secret_key(first, folder=tmp_path / "instance")
    ensure_secret_key(second, folder=tmp_path / "instance")  # the next start of the server
    assert len(first["SECRET_KEY"]) == 64 and first["SECRET_KEY"] == second["SECRET_KEY"]
    assert stat.S_IMODE((tmp_path / "instance" / "secret_key").stat().st_mode) == 0o600


def test_a_configured_key_is_used_and_nothing_is_written(tmp_path):
    config = {"SECRET_KEY": "from-the-environment"}
    ensure_secret_key(config, folder=tmp_path / "instance")
    assert config["SECRET_KEY"] == "from-the-environment"
    assert not (tmp_path / "instance").exists()

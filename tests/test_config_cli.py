"""Configuration precedence and the command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cityweave.cli.main import app as cli
from cityweave.config import load_settings


def test_env_beats_toml_beats_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "cityweave.toml"
    config.write_text('[cityweave]\nport = 9001\nlog_json = true\ndatabase_url = "postgres://u@h/db"\n')
    monkeypatch.setenv("CITYWEAVE_CONFIG_FILE", str(config))
    settings = load_settings()
    assert settings.port == 9001 and settings.log_json is True
    assert settings.database_url == "postgresql+psycopg://u@h/db"
    monkeypatch.setenv("CITYWEAVE_PORT", "9002")
    assert load_settings().port == 9002
    assert load_settings(port=9003).port == 9003  # a CLI flag wins over all


def test_unknown_toml_key_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "cityweave.toml"
    config.write_text("prot = 9001\n")
    monkeypatch.setenv("CITYWEAVE_CONFIG_FILE", str(config))
    with pytest.raises(ValueError, match="prot"):
        load_settings()


def test_every_command_has_help() -> None:
    runner = CliRunner()
    top = runner.invoke(cli, ["--help"])
    assert top.exit_code == 0
    commands = ["demo", "serve", "migrate", "user", "import", "export", "audit", "keygen"]
    for command in commands:
        assert command in top.output, command
        result = runner.invoke(cli, [command, "--help"])
        assert result.exit_code == 0, (command, result.output)
    for sub in (["user", "create"], ["user", "list"], ["audit", "verify"]):
        assert runner.invoke(cli, [*sub, "--help"]).exit_code == 0


def test_user_commands_on_a_fresh_data_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CITYWEAVE_DATABASE_URL", "CITYWEAVE_SECRET_KEY", "CITYWEAVE_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path)]
    assert runner.invoke(cli, ["migrate", *data]).exit_code == 0
    created = runner.invoke(cli, ["user", "create", "root", "--role", "platform_admin", "--password", "Root-pass-2026", *data])
    assert created.exit_code == 0, created.output
    weak = runner.invoke(cli, ["user", "create", "weak", "--role", "platform_admin", "--password", "password", *data])
    assert weak.exit_code == 1 and "password" in weak.output
    bad_role = runner.invoke(cli, ["user", "create", "x", "--role", "emperor", "--password", "Root-pass-2026", *data])
    assert bad_role.exit_code == 1
    listed = runner.invoke(cli, ["user", "list", *data])
    assert "root" in listed.output and "platform_admin" in listed.output
    assert runner.invoke(cli, ["user", "unlock", "nobody", *data]).exit_code == 1
    assert runner.invoke(cli, ["audit", "verify", *data]).exit_code == 0
    assert (tmp_path / "secret.key").exists()


def test_production_mode_refuses_without_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CITYWEAVE_SECRET_KEY", raising=False)
    monkeypatch.setenv("CITYWEAVE_MODE", "production")
    result = CliRunner().invoke(cli, ["migrate", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "master key" in result.output

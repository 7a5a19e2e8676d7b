from pathlib import Path

import pytest
from pydantic import ValidationError

from moonbase.settings import load_settings


def test_defaults_use_sqlite_in_the_data_dir(tmp_path: Path):
    settings = load_settings(data_dir=tmp_path)
    assert settings.resolved_database_url == f"sqlite+aiosqlite:///{tmp_path / 'moonbase.db'}"
    assert "embedded" in settings.engines


def test_toml_then_environment_then_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    config = tmp_path / "moonbase.toml"
    config.write_text(
        'port = 9000\nhost = "0.0.0.0"\n[engines.embedded]\nn_ctx = 2048\n'
        '[models."kimi-k2.5"]\ncontext_length = 1024\n'
    )
    monkeypatch.setenv("MOONBASE_PORT", "9100")
    settings = load_settings(config)
    assert settings.host == "0.0.0.0"
    assert settings.port == 9100  # environment beats the file
    assert settings.engines["embedded"].n_ctx == 2048
    assert settings.models["kimi-k2.5"].context_length == 1024
    assert load_settings(config, port=9200).port == 9200  # arguments beat both


def test_unknown_model_ids_in_config_are_refused(tmp_path: Path):
    config = tmp_path / "moonbase.toml"
    config.write_text('[models."gpt-5"]\nenabled = false\n')
    with pytest.raises(ValidationError, match="gpt-5"):
        load_settings(config)


def test_missing_config_file_is_reported(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        load_settings(tmp_path / "nope.toml")

"""``moonbase models``: every catalog id, its engine, what serves it (read from
the GGUF's metadata) and its capabilities; ``models pull`` and ``serve
--model`` refuse what they cannot do with one line, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from moonbase.catalog import MODEL_SPECS
from moonbase.cli import app
from moonbase.engines.llamacpp.model_file import default_model_path

runner = CliRunner()


@pytest.fixture(autouse=True)
def no_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MOONBASE_ENGINES__EMBEDDED__MODEL", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing here may reach a hub


def test_the_default_catalog_is_listed_with_the_embedded_gguf(tmp_path: Path) -> None:
    shown = runner.invoke(app, ["models", "--data-dir", str(tmp_path)])
    assert shown.exit_code == 0, shown.output
    assert str(default_model_path()) in shown.output
    assert "Q4_1" in shown.output and "trained context 8192" in shown.output
    for spec in MODEL_SPECS:
        assert spec.id in shown.output
    assert "thinking (reasoning phase)" in shown.output


def test_the_listing_as_json(tmp_path: Path) -> None:
    shown = runner.invoke(app, ["models", "--json", "--data-dir", str(tmp_path)])
    assert shown.exit_code == 0, shown.output
    document = json.loads(shown.output)
    (engine,) = document["engines"]
    assert engine["size_bytes"] == default_model_path().stat().st_size
    assert (engine["quantisation"], engine["trained_context"]) == ("Q4_1", 8192)
    assert engine["tool_format"] == "hermes" and engine["native_reasoning"] is False
    rows = {row["id"]: row for row in document["models"]}
    assert len(rows) == len(MODEL_SPECS)
    assert rows["moonshot-v1-8k"] == {
        "id": "moonshot-v1-8k",
        "engine": "embedded",
        "context": 8192,
        "capabilities": ["tools (hermes)"],
    }


def test_an_upstream_engine_and_a_model_not_downloaded(tmp_path: Path) -> None:
    config = tmp_path / "moonbase.toml"
    config.write_text(
        '[engines.embedded]\nmodel = "hf://example-org/tiny-GGUF/tiny.gguf"\n'
        '[engines.kimi]\nkind = "upstream"\nurls = ["http://10.0.0.5:8000/v1"]\n'
        'supports_image_in = true\n[models."kimi-k2.5"]\nengine = "kimi"\n'
    )
    shown = runner.invoke(app, ["models", "-c", str(config), "--data-dir", str(tmp_path)])
    assert shown.exit_code == 0, shown.output
    assert "not downloaded yet: moonbase models pull" in shown.output
    assert "generic upstream at http://10.0.0.5:8000/v1" in shown.output
    line = next(line for line in shown.output.splitlines() if line.startswith("kimi-k2.5 "))
    assert "images" in line and "kimi" in line


def test_pull_refuses_what_is_not_a_hub_reference(tmp_path: Path) -> None:
    pulled = runner.invoke(app, ["models", "pull", "/models/x.gguf", "--data-dir", str(tmp_path)])
    assert pulled.exit_code == 1
    assert "is not hf://" in pulled.output
    nothing = runner.invoke(app, ["models", "pull", "--data-dir", str(tmp_path)])
    assert nothing.exit_code == 0 and "nothing to fetch" in nothing.output


def test_serve_refuses_a_model_it_cannot_have_before_serving(tmp_path: Path) -> None:
    missing = tmp_path / "absent.gguf"
    started = runner.invoke(app, ["serve", "--data-dir", str(tmp_path), "--model", str(missing)])
    assert started.exit_code == 1
    assert f"error: engine embedded: model file not found: {missing}" in started.output
    offline = runner.invoke(
        app, ["serve", "--data-dir", str(tmp_path), "--model", "hf://o/r/m.gguf"]
    )
    assert offline.exit_code == 1 and "HF_HUB_OFFLINE" in offline.output


def test_serve_model_needs_an_embedded_default_engine(tmp_path: Path) -> None:
    config = tmp_path / "moonbase.toml"
    config.write_text(
        'default_engine = "kimi"\n[engines.kimi]\nkind = "upstream"\n'
        'urls = ["http://10.0.0.5:8000/v1"]\n'
    )
    started = runner.invoke(
        app, ["serve", "-c", str(config), "--data-dir", str(tmp_path), "--model", "x.gguf"]
    )
    assert started.exit_code == 1
    assert "is not an embedded (llamacpp) one" in started.output


def test_model_path_is_the_older_name_of_model() -> None:
    from moonbase.settings import EngineSettings

    assert EngineSettings(model_path=Path("/m/x.gguf")).model == "/m/x.gguf"
    with pytest.raises(ValueError, match="not both"):
        EngineSettings(model="a.gguf", model_path=Path("/m/x.gguf"))


def test_a_settings_mistake_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    environment = {
        **os.environ,
        "MOONBASE_ENGINES__EMBEDDED__MODEL": "a.gguf",
        "MOONBASE_ENGINES__EMBEDDED__MODEL_PATH": "/m/x.gguf",
    }
    shown = subprocess.run(
        [sys.executable, "-m", "moonbase", "models", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=600,
    )
    assert shown.returncode == 1
    assert shown.stderr.startswith("error: invalid settings: engines.embedded")
    assert "not both" in shown.stderr and "Traceback" not in shown.stderr

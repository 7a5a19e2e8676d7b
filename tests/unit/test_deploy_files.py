"""The deployment files name real settings and real commands, and parse."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from moonbase.cli import app
from moonbase.settings import Settings, UpstreamEngineSettings, load_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def setting_exists(env_name: str) -> bool:
    """MOONBASE_FILES__S3__BUCKET -> Settings.files.s3.bucket exists."""
    model: type[BaseModel] | None = Settings
    for part in env_name.removeprefix("MOONBASE_").lower().split("__"):
        if model is None or part not in model.model_fields:
            return False
        annotation = model.model_fields[part].annotation
        candidates = getattr(annotation, "__args__", (annotation,))
        model = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
    return True


def containers() -> list[tuple[str, dict]]:
    found = []
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for name, service in compose["services"].items():
        if service.get("image") == "moonbase:latest":
            found.append(
                (f"compose {name}", {"env": service["environment"], "args": service["command"]})
            )
    for document in yaml.safe_load_all((DEPLOY / "k8s" / "moonbase.yaml").read_text()):
        if document["kind"] == "Secret":
            found.append(("k8s secret", {"env": document["stringData"], "args": ["serve"]}))
        if document["kind"] == "Deployment":
            (container,) = document["spec"]["template"]["spec"]["containers"]
            env = {item["name"]: item["value"] for item in container.get("env", [])}
            found.append(
                (f"k8s {document['metadata']['name']}", {"env": env, "args": container["args"]})
            )
    return found


@pytest.mark.parametrize(
    ("where", "spec"), containers(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_environment_names_real_settings_and_commands_exist(where: str, spec: dict):
    for name in spec["env"]:
        if name.startswith("MOONBASE_") and name != "MOONBASE_CONFIG":
            assert setting_exists(name), f"{where}: {name} is not a setting"
    commands = {
        command.name or command.callback.__name__
        for command in app.registered_commands
        if command.callback is not None
    }
    assert spec["args"][0] in commands, f"{where}: no command {spec['args'][0]}"


def test_the_shared_config_loads():
    settings = load_settings(DEPLOY / "moonbase.toml")
    engine = settings.engines[settings.default_engine]
    assert isinstance(engine, UpstreamEngineSettings) and len(engine.urls) == 2
    assert settings.batches.run_worker is False


def test_gateways_are_probed_on_ready_and_health():
    documents = list(yaml.safe_load_all((DEPLOY / "k8s" / "moonbase.yaml").read_text()))
    gateway = next(d for d in documents if d["metadata"]["name"] == "moonbase-gateway")
    (container,) = gateway["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"

"""/openapi.json (behind /docs) has no dangling references."""

import json
import re
from pathlib import Path

from moonbase.app import create_app
from moonbase.settings import Settings


def test_every_reference_resolves(tmp_path: Path):
    spec = create_app(Settings(data_dir=tmp_path), engines={}).openapi()
    text = json.dumps(spec)
    names = set(spec["components"]["schemas"])
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', text))
    assert refs <= names, refs - names
    body = spec["paths"]["/v1/chat/completions"]["post"]["requestBody"]
    assert "messages" in body["content"]["application/json"]["schema"]["properties"]

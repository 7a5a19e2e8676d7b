import pytest

from moonbase.catalog import MODEL_SPECS, SPECS_BY_ID, pick_auto_model
from tests.datafiles import openapi_spec


def spec_model_ids() -> set[str]:
    spec = openapi_spec()
    mapping = spec["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]["discriminator"]["mapping"]
    return set(mapping)


def test_catalog_has_exactly_the_specs_fourteen_models():
    assert len(MODEL_SPECS) == 14
    assert set(SPECS_BY_ID) == spec_model_ids()


@pytest.mark.parametrize(
    ("prompt", "max_tokens", "picked"),
    [
        (100, 1024, "moonshot-v1-8k"),
        (7000, 1192, "moonshot-v1-8k"),
        (7000, 1193, "moonshot-v1-32k"),
        (30000, 2768, "moonshot-v1-32k"),
        (30000, 2769, "moonshot-v1-128k"),
        (200000, 10, "moonshot-v1-128k"),
    ],
)
def test_auto_picks_the_smallest_context_that_fits(prompt, max_tokens, picked):
    assert pick_auto_model(prompt, max_tokens) == picked

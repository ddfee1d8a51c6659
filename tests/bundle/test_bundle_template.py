"""The Pixi template shipped in the package: pixi's own manifest schema, pins, what every bundle must bring."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import pytest

from sglangc.catalog import shipped_versions, template_versions
from sglangc.load import tomllib

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "tests" / "data" / "pixi" / "manifest.schema.json"  # pixi v0.77.0's own (see its README)
TEMPLATE = resources.files("sglangc.emit_templates") / "pixi" / "pixi.toml"
TEXT = TEMPLATE.read_text("utf-8")
MANIFEST = tomllib.loads(TEXT)
ENVIRONMENTS = sorted(MANIFEST.get("environments", {}))


def env_pypi(env: str) -> dict:
    spec = MANIFEST["environments"][env]
    features = spec if isinstance(spec, list) else spec["features"]
    merged = dict(MANIFEST.get("pypi-dependencies", {}))
    for feature in features:
        merged.update(MANIFEST["feature"][feature].get("pypi-dependencies", {}))
    return merged


def version_of(spec: object) -> str:
    return spec["version"] if isinstance(spec, dict) else str(spec)


def test_template_validates_against_pixis_manifest_schema() -> None:
    import jsonschema

    schema = json.loads(SCHEMA.read_text("utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(MANIFEST)]
    assert errors == []


def test_template_shape() -> None:
    assert "workspace" in MANIFEST and "project" not in MANIFEST  # [project] is deprecated since pixi 0.57
    assert "linux-64" in MANIFEST["workspace"]["platforms"]
    conda = MANIFEST["dependencies"]
    assert {"python", "supervisor", "pyyaml"} <= set(conda)
    assert re.fullmatch(r"3\.1[1-9]\.\*", conda["python"])
    verify = MANIFEST["tasks"]["verify"]
    cmd = verify["cmd"] if isinstance(verify, dict) else verify
    assert "import" in cmd and "torch" in cmd and "sglang" in cmd and "is_available" in cmd
    assert "exit" in cmd  # fails when CUDA is not usable
    assert len(ENVIRONMENTS) >= 2 and "default" in ENVIRONMENTS
    assert "--attention-backend triton --sampling-backend pytorch" in TEXT  # the FlashInfer fallback is named


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_environment_pins_sglang_torch_kernel_flashinfer(env: str) -> None:
    pypi = env_pypi(env)
    for name in ("sglang", "torch", "sglang-kernel", "flashinfer-python"):
        assert name in pypi, f"{env}: {name} is not pinned"
        assert version_of(pypi[name]).startswith("=="), f"{env}: {name} is not an exact pin"
    assert isinstance(pypi["torch"], dict) and pypi["torch"]["index"].startswith("https://download.pytorch.org/whl/cu")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_environments_sglang_has_a_shipped_catalog(env: str) -> None:
    version = template_versions()[env]
    assert version == version_of(env_pypi(env)["sglang"]).removeprefix("==")
    assert version in shipped_versions(), f"{env} pins sglang {version}, which has no flag catalog"


def test_packaged_template_has_no_pixi_state() -> None:
    names = {p.name for p in (resources.files("sglangc.emit_templates") / "pixi").iterdir()}
    assert ".pixi" not in names

"""The Trainer's cache key includes every project module the Trainer runs: editing any of them retrains."""
from pathlib import Path

import pytest
import yaml

from imagepipe.pipeline import project_imports, source_fingerprint, trainer_code_modules
from imagepipe.spec import Spec
from tests.conftest import REPO


def spec_of(name: str) -> Spec:
    return Spec.model_validate(yaml.safe_load((REPO / "pipelines" / name).read_text()))


def test_the_trainer_code_includes_shared_blocks_and_mixmatchs_backbone():
    convnet = project_imports(*trainer_code_modules(spec_of("digits.yaml")))
    # blocks.py sets the batch-norm momentum convnet, inception and squeezenet use; it was missed once.
    assert {"trainer_modules.convnet", "trainer_modules.blocks", "trainer_modules.base",
            "components.image_transform", "components.contracts"} <= set(convnet)
    mixmatch = project_imports(*trainer_code_modules(spec_of("digits-mixmatch.yaml")))
    assert {"trainer_modules.mixmatch", "trainer_modules.convnet", "trainer_modules.blocks"} <= set(mixmatch)


@pytest.mark.parametrize("spec_name", ["digits.yaml", "digits-mixmatch.yaml", "sine.yaml"])
def test_editing_any_module_the_trainer_imports_changes_its_cache_key(spec_name):
    modules = trainer_code_modules(spec_of(spec_name))
    before = source_fingerprint(*modules)
    for name, path in project_imports(*modules).items():
        def edited(p: Path, path=path) -> bytes:
            return p.read_bytes() + (b"\n# edited\n" if p == path else b"")

        assert source_fingerprint(*modules, read=edited) != before, f"editing {name} ({path}) keeps the cache"
    assert source_fingerprint(*modules) == before  # and nothing else moves it


def test_a_module_the_trainer_does_not_import_leaves_its_cache_key_alone():
    modules = trainer_code_modules(spec_of("digits.yaml"))
    assert "imagepipe.cli" not in project_imports(*modules)
    assert "trainer_modules.sine" not in project_imports(*modules)

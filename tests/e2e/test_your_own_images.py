"""The README's "Your own images" recipe, as written, on a photo folder of the kind users bring.

200 photos in 4 classes made from scikit-image's sample photos (`imagepipe data photos`: crops, flips,
24 to 1,600 px, colour changes, JPEG and PNG, grayscale, RGBA, CMYK and EXIF-rotated files among them).
The spec is the YAML block of the README's section, with only its data root replaced: if the README's
recipe changes, this test runs the new one. It must be blessed and pushed.
"""
import json
import re

import pytest
import yaml

from imagepipe import results
from imagepipe.datasets import write_photos
from tests.conftest import REPO, imagepipe

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]


def readme_recipe() -> dict:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Your own images", 1)[1].split("\n## ", 1)[0]
    return yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))


def test_the_readme_recipe_trains_a_users_photo_folder_and_pushes_it(tmp_path):
    write_photos(tmp_path / "photos", per_class=50, seed=0)
    spec = readme_recipe()
    spec["data"]["root"] = str(tmp_path / "photos")
    spec_path = tmp_path / "pipelines" / "photos.yaml"
    spec_path.parent.mkdir()
    spec_path.write_text(yaml.safe_dump(spec))  # outputs/ beside pipelines/, as for a user

    result = imagepipe("run", str(spec_path), "--json", timeout=1100)
    assert result.returncode == results.EXIT_PUSHED, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["status"] == "pushed" and summary["blessed"] is True
    assert summary["files_ingested"] == 200 and summary["files_skipped"] == 0
    assert summary["accuracy"] >= spec["evaluation"]["min_accuracy"]
    assert summary["kept_epoch"] >= 1 and summary["kept_because"].startswith("best eval accuracy")
    print(json.dumps({key: summary[key] for key in ("accuracy", "kept_epoch", "epochs_run", "kept_because",
                                                    "training_warnings")}))

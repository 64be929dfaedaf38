"""`make bench`: every benchmark in bench/, each writing bench/results/<name>.json."""
import runpy
from pathlib import Path

for script in ["cached_rerun.py"]:
    print(f"== bench/{script}")
    runpy.run_path(str(Path(__file__).parent / script), run_name="__main__")

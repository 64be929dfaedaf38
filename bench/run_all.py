"""`make bench`: every benchmark in bench/, each writing bench/results/<name>.json."""
import runpy
from pathlib import Path

# cached_rerun first: it leaves outputs/digits alone; other_source_digits reads the pushed model of `make run`.
for script in ["cached_rerun.py", "other_source_digits.py", "edge.py", "sine_seeds.py", "families.py", "ingest.py"]:
    print(f"== bench/{script}")
    runpy.run_path(str(Path(__file__).parent / script), run_name="__main__")

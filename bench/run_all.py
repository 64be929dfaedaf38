"""`make bench`: every benchmark in bench/, each writing bench/results/<name>.json, then the table in bench/README.md."""
import runpy
from pathlib import Path

# overhead first: it works in scratch folders and leaves outputs/digits alone; training_input and
# other_source_digits read what `make run` left in outputs/digits.
for script in ["overhead.py", "training_input.py", "other_source_digits.py", "edge.py", "sine_seeds.py",
               "families.py", "ingest.py", "mixmatch.py", "summarize.py"]:
    print(f"== bench/{script}")
    runpy.run_path(str(Path(__file__).parent / script), run_name="__main__")

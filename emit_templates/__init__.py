"""Package data: the templates of the generated files, the static runtime (runtime/) and the Pixi template (pixi/)."""

from pathlib import Path

DIR = Path(__file__).resolve().parent  # read as plain files: importlib.resources costs ~10 ms to import

"""nbval over the chapters (`make notebooks`): the chapters go to pytest-xdist's workers longest first.

With `--dist loadfile --no-loadscope-reorder` each chapter runs whole on one worker, in its own kernel (pinned to
that worker's cores by the repository's conftest.py), and a worker takes the next chapter in collection order when
it is near the end of its own. This hook sorts the collection by the wall times that
`tools/chapters.py run` recorded in book/runtimes.json (longest first; a chapter not recorded there goes first;
a chapter's cells keep their order), so that the last chapter to start is a short one and neither worker waits
long at the end."""
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def recorded_seconds(runtimes: Path = ROOT / "book" / "runtimes.json") -> dict:
    """{chapter path relative to the repository: recorded wall seconds}."""
    return {path: entry["seconds"] for path, entry in json.loads(runtimes.read_text()).items()}


def longest_first(items, seconds: dict) -> list:
    """`items` (pytest items) sorted by their file's recorded seconds, longest first; stable, so that a chapter's
    cells stay in order; a file without a recorded time counts as the longest."""
    def key(item):
        path = Path(str(item.path)).resolve()
        relative = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
        return -seconds.get(relative, float("inf"))
    return sorted(items, key=key)


def pytest_collection_modifyitems(config, items):
    items[:] = longest_first(items, recorded_seconds())

"""Published reference data vendored in ``tests/data`` (sources and licences: its README)."""

from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"


def reference_path(name: str) -> Path:
    """The path of the vendored reference file ``name``; fails loudly when it is missing."""
    path = DATA / name
    assert path.exists(), f"reference file {path} is missing from the repository"
    return path

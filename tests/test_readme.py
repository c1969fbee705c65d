"""The README shows the quickstart file as it is, so what a reader copies is what runs."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_quickstart_yaml_is_examples_quickstart_yaml() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    example = (ROOT / "examples" / "quickstart.yaml").read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in readme.split("```yaml\n")[1:]]
    assert example in blocks, "README's quickstart YAML differs from examples/quickstart.yaml"

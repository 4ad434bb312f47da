"""The README's usage example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_usage_example_runs(tmp_path, monkeypatch, capsys):
    text = README.read_text()
    blocks = re.findall(r"## Usage\n\n```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 1, "the README has one usage example"
    assert len(blocks[0].strip().splitlines()) <= 15
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], "README usage", "exec"), {})
    assert "bytes of state" in capsys.readouterr().out


def test_readme_starts_with_the_two_setup_commands():
    text = README.read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, flags=re.S).group(1).strip().splitlines()
    assert len(first_block) == 2
    assert first_block[0].endswith("infini demo")
    assert first_block[1].endswith("python -m pytest tests -q")
    ci = (README.parent / ".ci" / "run").read_text()
    assert "python -m pytest tests -q" in ci

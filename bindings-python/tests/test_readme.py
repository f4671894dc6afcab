"""The README's Python quickstart runs exactly as shown."""
import os
import re
import subprocess
import sys

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def test_the_readme_quickstart_runs_as_shown(tmp_path):
    text = open(README, encoding="utf-8").read()
    section = text.split("## Python quickstart", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) <= 10
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[['milk']]"


def test_the_readme_transport_and_asyncio_snippets_run_as_shown(tmp_path):
    text = open(README, encoding="utf-8").read()
    section = text.split("### Your own transport", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 2
    outs = []
    for code in blocks:
        assert "sleep" not in code
        out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        outs.append(out.stdout)
    assert outs[0].strip() == "1 True [1]"
    assert outs[1].strip() == "[1]"

"""``scripts/demo --check``: the development provider and the default example
(Starlette under uvicorn) start, alice signs in without a browser, and both stop."""

from __future__ import annotations

import subprocess

from tests.examples.harness import ROOT


def test_scripts_demo_check() -> None:
    result = subprocess.run(
        ["bash", "scripts/demo", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,  # scripts/install may have to reinstall after a pyproject change
        check=False,
    )
    output = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, output
    assert "/me -> 200" in result.stdout, output
    assert "alice@corp.com" in result.stdout, output
    assert '"groups":["admins","staff"]' in result.stdout, output

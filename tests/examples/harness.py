"""Run an example app as its own process under a real server, and log in to it
through the development provider the way a browser does."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlencode

import httpx

__all__ = ["HTML", "JSON", "ROOT", "app_env", "run_server", "server_log", "signed_in"]

ROOT = Path(__file__).resolve().parents[2]
HTML = {"accept": "text/html,application/xhtml+xml"}
JSON = {"accept": "application/json"}
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


def server_log(log: Path) -> str:
    """What the server printed so far."""
    return log.read_text(errors="replace") if log.exists() else "(no output)"


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def run_server(command: Sequence[str], env: Mapping[str, str], port: int) -> Iterator[Path]:
    """Start ``command`` from the repository root; yield its log file once it listens.

    Fails (with the server's output) when it exits or is not listening on
    ``port`` within 10 s. The process is always stopped on exit, and its output
    printed, which pytest shows only when the test failed.
    """
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                list(command), cwd=ROOT, env=dict(env), stdout=out, stderr=subprocess.STDOUT
            )
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while not _listening(port):
                if process.poll() is not None:
                    raise RuntimeError(
                        f"{command[2]} exited with {process.returncode}:\n{server_log(log)}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{command[2]} not listening on {port} after {START_TIMEOUT} s:\n"
                        + server_log(log)
                    )
                time.sleep(0.05)
            yield log
        finally:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            print(f"--- {' '.join(command[2:])} output ---\n{server_log(log)}")


def app_env(**settings: str) -> dict[str, str]:
    """This environment without any ``OIDC_*`` variable, plus ``settings`` as ``OIDC_*``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("OIDC_")}
    env.update({f"OIDC_{name.upper()}": value for name, value in settings.items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env


@contextlib.contextmanager
def signed_in(app_url: str, user: str, path: str = "/me") -> Iterator[httpx.Client]:
    """A client (with its own cookie jar) signed in as ``user`` (a sub or an email).

    Asks for ``path`` as a browser, follows the redirect to the provider, where
    ``login_hint`` picks the user, and delivers the code to the callback.
    """
    with httpx.Client(base_url=app_url, timeout=10.0) as client:
        start = client.get(path, headers=HTML)
        assert start.status_code == 302, start.text
        authorize = client.get(f"{start.headers['location']}&{urlencode({'login_hint': user})}")
        assert authorize.status_code in (302, 303), authorize.text
        callback = client.get(authorize.headers["location"], headers=HTML)
        assert callback.status_code == 302, callback.text
        assert callback.headers["location"] == f"{app_url}{path}"
        yield client

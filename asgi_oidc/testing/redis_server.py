"""A throwaway ``redis-server`` on a free loopback port, for test suites.

Nothing is saved to disk, its output goes to a log file in its own temporary
directory (never to a pipe nobody reads), and it can be stopped and started
again on the same port to play "Redis went away and came back"::

    server = RedisServer()
    server.start()
    app = OIDCMiddleware(app, redis_url=server.url, ...)
    ...
    server.close()
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import redis

__all__ = ["RedisServer", "RedisServerMissing"]


class RedisServerMissing(RuntimeError):
    """No ``redis-server`` executable on PATH."""

    def __init__(self) -> None:
        super().__init__("redis-server is missing: install it with apt-get install -y redis-server")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1; :meth:`start` launches it.

    ``command_prefix`` goes before the executable (e.g. ``["taskset", "-c",
    "1"]`` to pin it to a core). Raises :class:`RedisServerMissing` when
    there is no ``redis-server`` on PATH.
    """

    def __init__(self, *, command_prefix: Sequence[str] = ()) -> None:
        """Find ``redis-server`` and pick a port."""
        executable = shutil.which("redis-server")
        if executable is None:
            raise RedisServerMissing()
        self.executable = executable
        self.command_prefix = tuple(command_prefix)
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = Path(tempfile.mkdtemp(prefix="asgi-oidc-redis-"))
        self.log_path = self.directory / "redis.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        """Whether the process was started and has not exited."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._process.pid if self._process is not None else None

    def start(self, timeout: float = 5.0) -> None:
        """Launch the server (on the same port as before) and wait for PING."""
        if self.running:
            return
        with self.log_path.open("ab") as log:
            # The child keeps its own copy of the log descriptor.
            self._process = subprocess.Popen(  # noqa: S603 -- our own fixed arguments
                [
                    *self.command_prefix,
                    self.executable,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--daemonize",
                    "no",
                    "--dir",
                    str(self.directory),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            if _answers_ping(self.port):
                return
            time.sleep(0.01)
        self.stop()
        log_tail = self.log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"redis-server did not answer PING on port {self.port}:\n{log_tail}")

    def stop(self) -> None:
        """Terminate the server and wait for it to exit."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def flushall(self) -> None:
        """Empty every database."""
        with redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5) as client:
            client.flushall()

    def close(self) -> None:
        """Stop the server and delete its directory."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    @staticmethod
    def version() -> str:
        """``redis-server --version``'s ``v=…`` (or ``missing``)."""
        executable = shutil.which("redis-server")
        if executable is None:
            return "missing"
        out = subprocess.run(  # noqa: S603 -- our own fixed arguments
            [executable, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
        for word in out.split():
            if word.startswith("v="):
                return word[2:]
        return out.strip()

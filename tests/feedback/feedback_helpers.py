"""Helpers shared by the feedback tests (imported by conftest.py and the tests): the admin token,
a free loopback port, synthetic response groups, and `running_server` — `python -m rlhfkit serve`
in a subprocess on 127.0.0.1, waited for until it answers, stopped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx

from rlhfkit.feedback.campaigns import ResponseGroup

ADMIN = "admin-token-for-tests-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def synthetic_groups(n_prompts: int, k: int = 2, texts: dict[int, list[str]] | None = None) -> list[ResponseGroup]:
    groups = []
    for p in range(n_prompts):
        responses = (texts or {}).get(p) or [f"response {r} to prompt {p}" for r in range(k)]
        groups.append(ResponseGroup(f"prompt {p}?", [(t, f"model-{r}", r) for r, t in enumerate(responses)]))
    return groups


@contextlib.contextmanager
def running_server(db: str, max_body: int | None = None) -> Iterator[str]:
    port = free_port()
    cmd = [sys.executable, "-m", "rlhfkit", "serve", "--db", db, "--port", str(port)]
    if max_body:
        cmd += ["--max-body", str(max_body)]
    env = {**os.environ, "RLHFKIT_ADMIN_TOKEN": ADMIN}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"rlhfkit serve exited: {proc.stdout.read() if proc.stdout else ''}")
            try:
                if httpx.get(url + "/login", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("rlhfkit serve did not answer within 60 s")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()

"""Shared fixtures."""

from __future__ import annotations

import os

import pytest
import torch


@pytest.fixture
def two_process_env() -> dict[str, str]:
    """Environment for `accelerate launch --multi_gpu --num_processes 2`: two GPUs where the machine has
    them; otherwise the GPUs are hidden so that the two processes run on the CPU over gloo (two processes
    on one GPU is a duplicate-device error in NCCL, not a set-up anyone runs)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if torch.cuda.device_count() < 2:
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


CHROMIUM = "/usr/bin/chromium"  # Debian's package (scripts/install.sh); `playwright install` is never run
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    """Debian's headless chromium through Playwright; skipped when either is missing, except in CI."""
    import shutil

    if not shutil.which(CHROMIUM) or not shutil.which("chromium"):
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: run scripts/install.sh")
        pytest.skip("chromium is missing: run scripts/install.sh")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()

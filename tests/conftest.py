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

"""Configs: dataclass defaults < YAML < flags, field docstrings as --help, clear errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rlhfkit.config import field_docs, parse_config
from rlhfkit.errors import ConfigError
from rlhfkit.trainers.sft import SFTConfig


def test_precedence_defaults_yaml_flags(tmp_path):
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("batch_size: 4\nlr: 0.001\nout: from_yaml\n")
    config = parse_config(SFTConfig, ["--config", str(yaml_file), "--out", "from_flag", "--no-group-by-length"], "t")
    assert (config.batch_size, config.lr, config.out, config.group_by_length) == (4, 0.001, "from_flag", False)
    assert config.max_length == SFTConfig().max_length


def test_unknown_yaml_key_and_bad_type_name_the_file(tmp_path):
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("batch_sise: 4\n")
    with pytest.raises(ConfigError, match=r"c.yaml: key 'batch_sise': SFTConfig has no setting 'batch_sise' \(did you mean 'batch_size'"):
        parse_config(SFTConfig, ["--config", str(yaml_file)], "t")
    yaml_file.write_text("epochs: many\n")
    with pytest.raises(ConfigError, match="key 'epochs': expected a number"):
        parse_config(SFTConfig, ["--config", str(yaml_file)], "t")
    with pytest.raises(ConfigError, match="--batch-size must be at least 1"):
        parse_config(SFTConfig, ["--batch-size", "0"], "t")


def test_every_field_has_a_docstring_shown_in_help():
    docs = field_docs(SFTConfig)
    import dataclasses

    missing = [f.name for f in dataclasses.fields(SFTConfig) if not docs.get(f.name)]
    assert missing == []
    out = subprocess.run([sys.executable, "-m", "rlhfkit", "sft", "--help"], capture_output=True, text=True).stdout
    for flag in ("--model", "--data", "--out", "--batch-size", "--grad-accum", "--lr", "--epochs", "--max-steps",
                 "--max-length", "--seed", "--config"):
        assert flag in out
    assert "Peak learning rate" in out

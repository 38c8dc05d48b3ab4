"""Behaviour kept byte for byte: fixed seeds give the MIDI bytes and figures recorded in golden.json.

The cases (tests/golden_cases.py) cover every Composer entry point on the shipped models, the CLI,
each training loop and the benchmark model's likelihood. A change that is meant to alter what
musicflow produces records them anew (``python tests/golden_cases.py``) and says so in its commit.
"""

from __future__ import annotations

import json

import pytest
from golden_cases import GOLDEN, GROUPS, run


@pytest.mark.parametrize("group", list(GROUPS))
def test_golden(group, tmp_path):
    want = json.loads(GOLDEN.read_text())[group]
    got = json.loads(json.dumps(run(group, tmp_path)))
    assert set(got) == set(want), sorted(set(got) ^ set(want))
    differ = [k for k in want if got[k] != want[k]]
    assert not differ, f"changed: {differ}"

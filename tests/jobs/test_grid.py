"""The grid files in examples/grid run what they say: the Slurm array script and the
HTCondor submit description's command line, shard by shard, then the merge, give the
outputs of one unsharded run (the batch systems themselves are not here)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.jobs.outputs import assert_same_outputs

GRID = Path(__file__).resolve().parents[2] / "examples" / "grid"


def environment(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.update(extra)
    return env


def run(command: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stderr[-3000:]


def test_slurm_array_then_merge(batch_events, unsharded, tmp_path):
    common = {"INPUT": str(batch_events), "OUTPUT": str(tmp_path), "SERVER": "",
              "SLURM_SUBMIT_DIR": str(GRID)}
    for task in range(3):
        run(["bash", str(GRID / "reco_array.slurm")], environment(
            SLURM_ARRAY_TASK_ID=str(task), SLURM_ARRAY_TASK_COUNT="3", **common))
    run(["bash", str(GRID / "merge.slurm")], environment(COUNT="3", **common))
    assert_same_outputs(unsharded, tmp_path / "merged")


def htcondor_arguments(process: int, macros: dict[str, str]) -> list[str]:
    """reco.sub's `arguments` line with HTCondor's macros expanded for one job."""
    text = (GRID / "reco.sub").read_text()
    line = re.search(r"^arguments\s*=\s*(.+)$", text, re.M)
    assert line, "reco.sub has no arguments line"
    values = {"Process": str(process), **macros}
    return [re.sub(r"\$\((\w+)\)", lambda m: values[m.group(1)], a) for a in line[1].split()]


def test_htcondor_submit_runs_the_shards_and_the_dag_merges(batch_events, unsharded,
                                                            tmp_path):
    sub = (GRID / "reco.sub").read_text()
    assert re.search(r"^executable\s*=\s*run_shard\.sh$", sub, re.M)
    assert re.search(r"^queue \$\(N\)$", sub, re.M)
    assert "PARENT reco CHILD merge" in (GRID / "reco.dag").read_text()
    macros = {"N": "3", "INPUT": str(batch_events), "OUTPUT": str(tmp_path), "SERVER": ""}
    for process in range(3):
        run(["bash", str(GRID / "run_shard.sh"), *htcondor_arguments(process, macros), ""],
            environment())
    merge = re.search(r"^arguments\s*=\s*(.+)$", (GRID / "merge.sub").read_text(), re.M)
    assert merge and merge[1].split() == ["$(OUTPUT)", "$(N)"]
    run(["bash", str(GRID / "merge.sh"), str(tmp_path), "3"], environment())
    assert_same_outputs(unsharded, tmp_path / "merged")

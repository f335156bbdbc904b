"""Job assembly above the algorithms: where a job's inference runs (the placement), the
local Triton server a job starts when it has none (a framework service), the
reconstruction job of ``sonic-exatrkx run`` as one config value and one call (resumable,
shardable), and the merge of shards."""

from sonic_exatrkx.jobs.manifest import Manifest
from sonic_exatrkx.jobs.merge import MergeResult, merge_outputs
from sonic_exatrkx.jobs.reco import (
    Placement,
    RecoJob,
    RecoJobConfig,
    RecoJobResult,
    build_reco_job,
    place_inference,
    run_reco_job,
)
from sonic_exatrkx.jobs.triton_service import LocalTritonServer

__all__ = ["LocalTritonServer", "Manifest", "MergeResult", "Placement", "RecoJob",
           "RecoJobConfig", "RecoJobResult", "build_reco_job", "merge_outputs",
           "place_inference", "run_reco_job"]

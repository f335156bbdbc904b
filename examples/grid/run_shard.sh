#!/usr/bin/env bash
# One grid job: shard SHARD of COUNT of the events in INPUT -> OUTPUT/shardSHARD.
# Usage: run_shard.sh SHARD COUNT INPUT OUTPUT [SERVER]
#   SERVER (host:port of a Triton gRPC endpoint, or a load balancer in front of a pool):
#   ExaTrkX runs there; without it, in this job. Run again after a preemption: the job
#   resumes from its commits in OUTPUT/shardSHARD.
set -euo pipefail
shard=$1 count=$2 input=$3 output=$4 server=${5:-}
inference=()
if [ -n "$server" ]; then
  inference=(--inference triton --server "$server")
fi
exec sonic-exatrkx run --input "$input" --output "$output/shard$shard" \
  --shard "$shard/$count" --threads 1 "${inference[@]}"

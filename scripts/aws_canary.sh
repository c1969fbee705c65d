#!/usr/bin/env bash
# The live AWS canary: real EC2 in your account, expected cost under $0.25 (see README,
# "Live AWS canary"). It launches one spot g4dn.xlarge (on-demand if spot has no capacity)
# and one t3.medium, runs 1 epoch of MNIST and a PCA in both frameworks on each, checks that
# the GPU is seen and each instance's deadline timer is armed, then that nothing is left:
# zero instances, key pairs, security groups or volumes carrying the run's tag.
#
#   ORCHESTRATE_LIVE_AWS=1 AWS_PROFILE=me AWS_REGION=us-east-1 scripts/aws_canary.sh
#
# Needs: credentials allowed to do what `orchestrate plan --check-aws` lists, a default VPC,
# a G-family vCPU quota of at least 4 (spot or on-demand). Whatever happens, every instance
# powers itself off at 24 minutes (max_hours: 0.4) and `orchestrate gc` finds what is left.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${ORCHESTRATE_LIVE_AWS:-}" != "1" ]; then
    echo "refusing: this spends real money (< \$0.25); set ORCHESTRATE_LIVE_AWS=1 to run it" >&2
    exit 2
fi
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
"$PY" -c "import boto3; boto3.client('sts').get_caller_identity()" >/dev/null || {
    echo "no usable AWS credentials (aws configure, or AWS_PROFILE)" >&2
    exit 2
}
status=0
"$PY" -m pytest -q -m live_aws tests/live/test_aws_canary.py -p no:cacheprovider "$@" || status=$?
# A second look, whatever the test said: anything of ours past its expiry or orphaned goes.
"$PY" -m orchestrator gc ${AWS_REGION:+--region "$AWS_REGION"} || status=$?
exit "$status"

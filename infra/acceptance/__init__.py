"""The acceptance test on a real cloud account: `scripts/cloud-acceptance aws|azure` (costs money; never in CI).

One journey, each step timed and checked: `up` on a fresh stack of this checkout's program, then on the host
`deepracer doctor`, `validate`, `train --max-minutes 15`, `status --json` until an iteration and a checkpoint
exist, `evaluate`, `models car-package`, `stop`; then `destroy`, which is always attempted once the stack
exists, and a check that the models outlived it. The result is a Markdown table to paste into an issue.

Layers, importing downward only:
- `cli`: arguments, the refusals (no opt-in, no Pulumi CLI, no infra extra), exit codes.
- `journey`: the step runner and the order of the steps, against three small seams (`Stack`, `HostChannel`,
  `ModelStore`) that the tests replace with fakes; `summary` renders its results.
- `stack_config` (names and config of the fresh stack) and `host_commands` (the exact shell text each step
  sends to the host, and how its answers are read): pure.
- `pulumi_stack`, `aws_cloud`, `azure_cloud`: the real seams. They alone import pulumi.automation, boto3 and
  azure-storage-blob, inside their functions, so importing this package costs nothing.

It may import `infra.settings`; the Pulumi program (`infra/__main__.py`) never imports it.
"""

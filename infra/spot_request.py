"""Cancels the persistent spot request behind a host, and whatever it launched besides the host, before the host goes.

A persistent spot request outlives its instance: terminating the instance alone lets the request launch another
one, a GPU host that no stack knows of (hashicorp/terraform-provider-aws#38142). pulumi-aws 7 (a bridge of that
provider) does not cancel it, on `pulumi destroy` nor when a fallback replaces the host, which is the same Delete:
hashicorp/terraform-provider-aws, internal/service/ec2/ec2_instance.go, resourceInstanceDelete, cancels only

    if v, ok := d.GetOk("instance_lifecycle"); ok && v == awstypes.InstanceLifecycleSpot {
        ... conn.CancelSpotInstanceRequests(ctx, ...{SpotInstanceRequestIds: []string{spotInstanceRequestID}})

where `v` is an interface{} holding a Go string and the constant is of the named type awstypes.InstanceLifecycle:
they never compare equal, so the request is never cancelled and resourceInstanceDelete only terminates the instance
(hashicorp/terraform-provider-aws#41206 proposes the fix). Stop-on-interruption, which the host relies on to resume
training, needs a persistent request (EC2 refuses `stop` with a one-time one), so there is no request-free spot host.

So `pulumi up` runs this on the deployer's machine (a pulumi-command local command whose `delete` this is) whenever
the host goes. Pulumi deletes that command before the instance it depends on (on a replacement too: its inputs
depend on the host's id, so the engine deletes it first, pkg/resource/deploy/step_generator.go,
calculateDependentReplacements), so the request is cancelled first. The command names the host's instance id and
the spot request id pulumi-aws recorded for it (`spot_instance_request_id`): by that id the request is found even
after it replaced the host with an instance of its own, which is then terminated here. The host itself is left to
pulumi-aws, which terminates it next. An on-demand host has no request and nothing happens. If the provider one day
cancels the request itself, this finds it cancelled and does nothing more.

    python -m infra.spot_request --instance-id i-0abc --request-id sir-0abc --region us-east-1
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

# A request in these states can still launch an instance (closed, cancelled and failed ones cannot).
_LIVE_STATES = frozenset({"open", "active", "disabled"})
_GONE = frozenset({"shutting-down", "terminated"})
# An instance the request launched must be gone before pulumi-aws deletes the subnet and security group it is in.
_TERMINATED_WAIT = {"Delay": 5, "MaxAttempts": 120}


@dataclass
class Cleanup:
    """What `clean_up` did: requests cancelled, and instances they had launched besides the host, terminated."""

    cancelled: list[str] = field(default_factory=list)
    terminated: dict[str, str] = field(default_factory=dict)  # instance id -> the request that launched it


def host_requests(client: Any, instance_id: str, request_id: Optional[str] = None) -> list[dict]:
    """The spot requests behind the host: the one recorded with it (in any state) and any live one that launched it."""
    found: list[dict] = []
    token: Optional[str] = None
    while True:
        # Matched here, not by filters, which moto's EC2 lacks in part; an account holds few requests.
        page = client.describe_spot_instance_requests(**({"NextToken": token} if token else {}))
        found += [r for r in page.get("SpotInstanceRequests", [])
                  if (request_id and r.get("SpotInstanceRequestId") == request_id)
                  or (r.get("InstanceId") == instance_id and r.get("State") in _LIVE_STATES)]
        token = page.get("NextToken")
        if not token:
            return found


def _terminate(client: Any, instance_id: str) -> bool:
    """Terminates an instance unless it is gone already; True if it was still there."""
    from botocore.exceptions import ClientError

    try:
        (reservation,) = client.describe_instances(InstanceIds=[instance_id])["Reservations"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "InvalidInstanceID.NotFound":
            return False
        raise
    if reservation["Instances"][0]["State"]["Name"] in _GONE:
        return False
    client.terminate_instances(InstanceIds=[instance_id])
    return True


def clean_up(client: Any, instance_id: str, request_id: Optional[str] = None, wait: bool = True) -> Cleanup:
    """Cancels the host's live spot requests and terminates any instance they launched other than the host.

    A request already cancelled (an earlier attempt that failed halfway) still has its other instance terminated.
    """
    done = Cleanup()
    requests = host_requests(client, instance_id, request_id)
    done.cancelled = [r["SpotInstanceRequestId"] for r in requests if r.get("State") in _LIVE_STATES]
    if done.cancelled:
        client.cancel_spot_instance_requests(SpotInstanceRequestIds=done.cancelled)
    for request in requests:
        launched = request.get("InstanceId")
        if launched and launched != instance_id and _terminate(client, launched):
            done.terminated[launched] = request["SpotInstanceRequestId"]
    if done.terminated and wait:
        client.get_waiter("instance_terminated").wait(InstanceIds=sorted(done.terminated),
                                                      WaiterConfig=_TERMINATED_WAIT)
    return done


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.spot_request",
                                     description="Cancel the persistent spot request behind an instance.")
    parser.add_argument("--instance-id", required=True)
    parser.add_argument("--request-id", default="",
                        help="the spot request recorded with the instance (empty: an on-demand host, or unknown)")
    parser.add_argument("--region", required=True)
    parser.add_argument("--endpoint-url", default=None, help="EC2-compatible endpoint (tests)")
    args = parser.parse_args(argv)
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, WaiterError

    which = f"{args.request_id} of {args.instance_id}" if args.request_id else args.instance_id
    try:
        client = boto3.session.Session().client("ec2", region_name=args.region, endpoint_url=args.endpoint_url)
        done = clean_up(client, args.instance_id, args.request_id or None)
    except (BotoCoreError, ClientError, WaiterError) as error:
        print(f"cannot cancel the spot request {which}: {error}; cancel it in the EC2 console (Spot Requests) and "
              "terminate what it launched, or it may launch another instance", file=sys.stderr)
        return 1
    if done.cancelled:
        print(f"cancelled spot request {', '.join(done.cancelled)} of {args.instance_id}")
    for launched, request in done.terminated.items():
        print(f"terminated {launched}, which spot request {request} launched after {args.instance_id}")
    if not done.cancelled and not done.terminated:
        print(f"{args.instance_id} has no live spot request")
    return 0


if __name__ == "__main__":
    sys.exit(main())

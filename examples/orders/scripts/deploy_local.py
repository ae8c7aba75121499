"""Deploys infra/template.yaml as a CloudFormation stack on the emulator, the way `sam deploy`
does: each function's bootstrap (a host build, since the emulator runs it as a local process)
is packaged into a directory of its own, the template's `CodeUri` points at it (what `sam
package` rewrites for any deployment), and `sam deploy` uploads the packages and creates and
executes the change set. Prints `API: <invoke URL>`, the stack outputs, and one machine-readable
line `OUTPUTS: {...}`.

Runs with the SAM CLI's own Python (.venv), which brings boto3 and the SAM YAML reader.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import boto3
from botocore.exceptions import ClientError
from samcli.yamlhelper import yaml_dump, yaml_parse

ROOT = Path(__file__).resolve().parent.parent
# What a stack on the emulator needs (see README, "Local, two ways"): table deletion
# protection off (the emulator keeps it on for any value), and no metric-math alarm.
LOCAL_PARAMETERS = {
    "EventsTableDeletionProtection": "false",
    "ApiErrorRateAlarm": "Disabled",
}


def package(template_path, binaries, workdir):
    """A copy of the template whose functions point at packages of their own bootstraps."""
    template = yaml_parse(template_path.read_text())
    template.get("Globals", {}).get("Function", {}).pop("CodeUri", None)
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        binary = resource["Metadata"]["BuildProperties"]["Binary"]
        source = binaries / binary
        if not source.is_file():
            sys.exit(f"no {source}: build the functions first (cargo build)")
        package_dir = workdir / logical_id
        shutil.rmtree(package_dir, ignore_errors=True)
        package_dir.mkdir(parents=True)
        bootstrap = package_dir / "bootstrap"
        # Debug builds carry line tables: stripping makes the package a third of the size.
        stripped = subprocess.run(
            ["strip", "-o", str(bootstrap), str(source)], capture_output=True
        )
        if stripped.returncode != 0:
            shutil.copy2(source, bootstrap)
        bootstrap.chmod(0o755)
        resource["Properties"]["CodeUri"] = str(package_dir)
        # sam deploy packages CodeUri as it is; the cargo-lambda build hints are for sam build.
        resource.pop("Metadata", None)
    packaged = workdir / "template.yaml"
    packaged.write_text(yaml_dump(template))
    return packaged


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="eventfold-local")
    parser.add_argument("--binaries", default="target/debug")
    parser.add_argument(
        "--parameter", action="append", default=[], help="Key=Value, overrides"
    )
    args = parser.parse_args()
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        sys.exit("AWS_ENDPOINT_URL must name the emulator")
    region = os.environ.get("AWS_REGION", "us-east-1")
    session = boto3.session.Session(region_name=region)
    workdir = ROOT / ".local" / "deploy" / args.stack
    packaged = package(ROOT / "infra" / "template.yaml", ROOT / args.binaries, workdir)

    bucket = "eventfold-deploy-local"
    s3 = session.client("s3", endpoint_url=endpoint)
    try:
        s3.create_bucket(Bucket=bucket)
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise

    parameters = dict(LOCAL_PARAMETERS)
    for pair in args.parameter:
        key, _, value = pair.partition("=")
        parameters[key] = value
    sam = ROOT / os.environ.get("TOOLS_VENV", ".venv") / "bin" / "sam"
    deploy = subprocess.run(
        [
            str(sam),
            "deploy",
            "--template-file", str(packaged),
            "--stack-name", args.stack,
            "--s3-bucket", bucket,
            "--s3-prefix", args.stack,
            "--region", region,
            "--capabilities", "CAPABILITY_IAM",
            "--no-confirm-changeset",
            "--no-fail-on-empty-changeset",
            "--no-progressbar",
            "--parameter-overrides",
            *[f"{key}={value}" for key, value in parameters.items()],
        ],
        env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
        capture_output=True,
        text=True,
    )
    if deploy.returncode != 0:
        sys.stderr.write(deploy.stdout + deploy.stderr)
        sys.exit(f"sam deploy failed ({deploy.returncode})")

    cloudformation = session.client("cloudformation", endpoint_url=endpoint)
    stack = cloudformation.describe_stacks(StackName=args.stack)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    # The emulator's own invoke host (<id>.execute-api.localhost) needs DNS tricks; its path
    # form, LocalStack's, reaches the same API from any client.
    base = urlparse(endpoint)
    api = f"{base.scheme}://{base.netloc}/_aws/execute-api/{outputs['HttpApiId']}/$default"
    print(f"API: {api}")
    print(f"stack {args.stack}: {stack['StackStatus']}")
    for key, value in sorted(outputs.items()):
        print(f"  {key:<28} {value}")
    print("OUTPUTS: " + json.dumps({"Api": api, "StackName": args.stack, **outputs}))


if __name__ == "__main__":
    main()

"""What the emulator-fidelity tests ask of the emulator, through boto3 (run with the SAM CLI's
Python, .venv/bin/python). Every command prints one JSON document.

  aws.py call <service> <operation> <json parameters>
  aws.py create-stack <name> <template> [<Key=Value> ...]     waits; status, reason, outputs
  aws.py change-set <name> <template>                         creates one; its status or error
  aws.py stub-stack <name> <stub log>                         the stub code uploaded, then the
                                                              fidelity stack deployed
"""

import io
import json
import os
import sys
import time
import zipfile
from pathlib import Path

import boto3
from botocore.exceptions import ClientError

HERE = Path(__file__).resolve().parent
SESSION = boto3.session.Session(region_name=os.environ.get("AWS_REGION", "us-east-1"))


def client(service):
    return SESSION.client(service, endpoint_url=os.environ["AWS_ENDPOINT_URL"])


def create_stack(name, template_body, parameters):
    cloudformation = client("cloudformation")
    try:
        cloudformation.create_stack(
            StackName=name,
            TemplateBody=template_body,
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
    except ClientError as error:
        return {"status": "REFUSED", "reason": str(error), "outputs": {}}
    for _ in range(600):
        stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
        if not stack["StackStatus"].endswith("_IN_PROGRESS"):
            break
        time.sleep(0.1)
    reasons = [
        e.get("ResourceStatusReason", "")
        for e in cloudformation.describe_stack_events(StackName=name)["StackEvents"]
        if e.get("ResourceStatus", "").endswith("FAILED")
    ]
    return {
        "status": stack["StackStatus"],
        "reason": " | ".join(reasons),
        "outputs": {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
    }


def main():
    command, args = sys.argv[1], sys.argv[2:]
    if command == "call":
        service, operation, parameters = args
        try:
            answer = getattr(client(service), operation)(**json.loads(parameters))
        except ClientError as error:
            answer = {"Error": error.response["Error"]}
        answer.pop("ResponseMetadata", None)
        print(json.dumps(answer, default=str))
    elif command == "create-stack":
        name, template, *pairs = args
        parameters = dict(pair.split("=", 1) for pair in pairs)
        print(json.dumps(create_stack(name, Path(template).read_text(), parameters)))
    elif command == "change-set":
        name, template = args
        try:
            client("cloudformation").create_change_set(
                StackName=name,
                ChangeSetName=name + "-set",
                ChangeSetType="CREATE",
                TemplateBody=Path(template).read_text(),
                Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
            )
            print(json.dumps({"status": "CREATED", "reason": ""}))
        except ClientError as error:
            print(json.dumps({"status": "REFUSED", "reason": str(error)}))
    elif command == "stub-stack":
        name, stub_log = args
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            info = zipfile.ZipInfo("bootstrap")
            info.external_attr = 0o755 << 16
            archive.writestr(info, (HERE / "stub-bootstrap").read_bytes())
        bucket, key = "eventfold-fidelity", name + "/stub.zip"
        s3 = client("s3")
        try:
            s3.create_bucket(Bucket=bucket)
        except ClientError:
            pass
        s3.put_object(Bucket=bucket, Key=key, Body=code.getvalue())
        template = (HERE / "stub-stack.yaml").read_text()
        print(json.dumps(create_stack(
            name, template, {"CodeBucket": bucket, "CodeKey": key, "StubLog": stub_log}
        )))
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()

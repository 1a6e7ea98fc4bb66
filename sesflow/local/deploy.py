"""Deploy ``template.yaml`` into the local endpoint: SAM translator + CloudFormation.

Nothing is created by hand that the template does not declare: functions, state machines,
tables, buses, rules and the SES configuration set all come from CloudFormation. The SAM
translator needs S3 locations for ``CodeUri`` and ``DefinitionUri``; the local deploy gives
it ``s3://<artifacts bucket>/<the local path>`` (which is how the in-process Lambda runtime
finds a function's code) and inlines each ASL file as ``DefinitionString``.
"""

from __future__ import annotations

import copy
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

from sesflow.cfn_yaml import load_template

ARTIFACTS_BUCKET = "sesflow-local-artifacts"
ACCOUNT_ID = "123456789012"


class TemplateError(Exception):
    """The SAM translator rejected the template; the message names resource and reason."""


@dataclass
class Deployment:
    stack_name: str
    stack_id: str
    outputs: dict[str, str]
    resources: dict[str, dict[str, str]]  # logical id -> {type, physicalId}
    parameters: dict[str, str] = field(default_factory=dict)


def _function_code_uri(resource: dict[str, Any], globals_fn: dict[str, Any]) -> str | None:
    uri = resource.get("Properties", {}).get("CodeUri", globals_fn.get("CodeUri"))
    return uri if isinstance(uri, str) else None


def prepare(template: dict[str, Any], root: Path) -> tuple[dict[str, Any], dict[str, str], set[str]]:
    """Point CodeUri/DefinitionUri at the artifacts bucket.

    Returns the rewritten template, {state machine logical id: ASL text} and the set of code
    folders (relative to ``root``) that need an artifact.
    """
    template = copy.deepcopy(template)
    globals_fn = template.get("Globals", {}).get("Function", {})
    definitions: dict[str, str] = {}
    code_dirs: set[str] = set()
    for logical_id, resource in template.get("Resources", {}).items():
        props = resource.setdefault("Properties", {})
        if resource.get("Type") == "AWS::Serverless::Function":
            uri = _function_code_uri(resource, globals_fn)
            if uri is None or uri.startswith("s3://"):
                raise TemplateError(f"{logical_id}: CodeUri must be a local folder for local runs")
            folder = Path(uri).as_posix().strip("/")
            if not (root / folder).is_dir():
                raise TemplateError(f"{logical_id}: CodeUri folder {uri!r} does not exist")
            code_dirs.add(folder)
            props["CodeUri"] = f"s3://{ARTIFACTS_BUCKET}/{folder}"
        elif resource.get("Type") == "AWS::Serverless::StateMachine":
            uri = props.get("DefinitionUri")
            if isinstance(uri, str) and not uri.startswith("s3://"):
                path = root / uri
                if not path.is_file():
                    raise TemplateError(f"{logical_id}: DefinitionUri {uri!r} does not exist")
                text = path.read_text(encoding="utf-8")
                try:
                    json.loads(text)
                except json.JSONDecodeError as exc:
                    raise TemplateError(f"{logical_id}: {uri} is not valid JSON: {exc}") from exc
                definitions[logical_id] = text
                props["DefinitionUri"] = f"s3://{ARTIFACTS_BUCKET}/{uri}"
    if "CodeUri" in globals_fn:
        globals_fn.pop("CodeUri")
    return template, definitions, code_dirs


def translate(template: dict[str, Any], parameters: dict[str, str], region: str) -> dict[str, Any]:
    """Run the SAM translator; raise :class:`TemplateError` naming resource and reason."""
    values = {
        "AWS::Region": region,
        "AWS::AccountId": ACCOUNT_ID,
        "AWS::Partition": "aws",
        **parameters,
    }
    try:
        import boto3

        session = boto3.session.Session(region_name=region)
        return Translator(None, Parser(), boto_session=session).translate(  # type: ignore[no-any-return]
            copy.deepcopy(template),
            parameter_values=values,
            get_managed_policy_map=lambda: {},
        )
    except InvalidDocumentException as exc:
        reasons = "; ".join(str(cause.message) for cause in exc.causes)
        raise TemplateError(f"template rejected by the SAM translator: {reasons}") from exc


def _inline_definitions(cfn: dict[str, Any], definitions: dict[str, str]) -> None:
    for logical_id, text in definitions.items():
        # SAM keeps the logical id of a state machine it translates.
        props = cfn["Resources"][logical_id]["Properties"]
        props.pop("DefinitionS3Location", None)
        props["DefinitionString"] = text


def _artifact_zip(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("LOCAL.txt", f"code runs in-process from {folder}\n")
    return buf.getvalue()


def deploy(
    clients: Any,
    root: Path,
    stack_name: str,
    parameters: dict[str, str] | None = None,
    template_path: Path | None = None,
) -> Deployment:
    """Translate and create the stack through the local CloudFormation API."""
    parameters = dict(parameters or {})
    region = clients.region
    raw = load_template(template_path or root / "template.yaml")
    prepared, definitions, code_dirs = prepare(raw, root)
    cfn = translate(prepared, parameters, region)
    _inline_definitions(cfn, definitions)

    s3 = clients.client("s3")
    try:
        s3.create_bucket(Bucket=ARTIFACTS_BUCKET)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    for folder in sorted(code_dirs):
        s3.put_object(Bucket=ARTIFACTS_BUCKET, Key=folder, Body=_artifact_zip(root / folder))

    cf = clients.client("cloudformation")
    stack_id = cf.create_stack(
        StackName=stack_name,
        TemplateBody=json.dumps(cfn),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )["StackId"]
    stack = cf.describe_stacks(StackName=stack_id)["Stacks"][0]
    if stack["StackStatus"] != "CREATE_COMPLETE":
        raise TemplateError(f"stack {stack_name}: {stack['StackStatus']} {stack.get('StackStatusReason', '')}")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    resources = {
        r["LogicalResourceId"]: {"type": r["ResourceType"], "physicalId": r.get("PhysicalResourceId", "")}
        for r in cf.describe_stack_resources(StackName=stack_id)["StackResources"]
        if "LogicalResourceId" in r
    }
    missing = [lid for lid, res in cfn["Resources"].items() if lid not in resources and res.get("Condition") is None]
    if missing:
        raise TemplateError(f"stack {stack_name}: resources not created locally: {', '.join(missing)}")
    effective = {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}
    return Deployment(stack_name, stack_id, outputs, resources, effective)


def upload_templates(clients: Any, root: Path, bucket: str) -> int:
    """Sync ``templates/`` to the templates bucket; returns the number of objects."""
    s3 = clients.client("s3")
    count = 0
    base = root / "templates"
    for path in sorted(base.rglob("*")):
        if path.is_file():
            s3.put_object(Bucket=bucket, Key=path.relative_to(base).as_posix(), Body=path.read_bytes())
            count += 1
    return count

"""IAM on the local stack: every function and state machine acts with its own role.

Each Lambda function of the deployed template is invoked with credentials of its ``Role``
(an STS session of that role in moto, session name = function name, as Lambda does), put
in the invocation's environment (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/
``AWS_SESSION_TOKEN``); the Step Functions interpreter signs its service integrations with
the state machine's role; EventBridge rule targets of type ``states`` start executions with
the target's ``RoleArn``. Every request signed with such a role key is evaluated here against
the role's policies *as they are now* in moto's IAM (inline policies, which carry the SAM
policy templates expanded by the translator, and attached managed policies), so an
``iam.put_role_policy`` on the running stack takes effect at once. A request the policies
do not allow fails as the service fails it: HTTP 400/403 and the service's own code
(``AccessDeniedException``, S3 ``AccessDenied``, SNS ``AuthorizationError``, ...) with AWS's
message, e.g. ``User: arn:aws:sts::123456789012:assumed-role/R/fn is not authorized to
perform: dynamodb:GetItem on resource: arn:aws:dynamodb:...:table/T because no
identity-based policy allows the dynamodb:GetItem action``. Requests signed with any other
key (the CLI's and the tests' ``local``, moto's own ``ak``) keep full access.
``SESFLOW_LOCAL_IAM=off`` in the server's environment turns all of this off.
``GET /_sesflow/stats`` reports the decisions (``iam``: allowed / denied per role and action).

Why our own evaluator and not moto's (moto 5.2.5, ``moto/core/authorization.py``,
``moto/iam/access_control.py``) - what moto does:

* **Switch.** ``settings.INITIAL_NO_AUTH_ACTION_COUNT`` (env, default infinite): after that
  many requests *in the process*, every request is authenticated. It can be switched on after
  deployment (``POST /moto-api/reset-auth`` or the setting), but then for every caller:
  the ``local`` key and the interpreter's ``ak`` key are nobody's and fail with
  ``InvalidClientTokenId``. No per-key exemption.
* **Principal.** ``IAMRequest`` finds the key among IAM users' access keys (``AKIA...`` or no
  session token) or STS assumed roles (``sts_backends[account][partition].assumed_roles``,
  key id + session token), and verifies the SigV4 signature.
* **Policies.** Role: inline (``list_role_policies``/``get_role_policy``) + attached managed
  (default version). User: inline, attached, groups'. No permission boundary, no resource
  policy, no SCP. ``IAMPolicy`` does ``json.loads`` on each document: CloudFormation-created
  roles keep inline policies as dicts (``Role.put_policy``), which breaks it; and
  ``!If [c, x, !Ref AWS::NoValue]`` leaves ``None`` inside the ``Resource`` list.
* **Actions.** ``<credential scope service>:<operation>``: ``lambda:Invoke`` (IAM:
  ``lambda:InvokeFunction``), ``sqs:SendMessageBatch`` (IAM: ``sqs:SendMessage``), ...
* **Resources.** ``BaseResponse.call_action`` passes a resource only for SQS, IAM and STS
  (``_determine_resource``); every other service is checked against ``"*"``, and a statement
  naming an ARN does not match ``"*"``: every resource-scoped grant of our template would be
  *denied*. S3 has its own path (``_authenticate_and_authorize_s3_action``) with bucket and
  object ARNs.
* **Conditions.** Only in trust policies (``TrustRelationShipConditions``, values taken from
  the request's parameters); identity-policy conditions on context keys are not evaluated.
* **Services.** Whatever is dispatched through ``BaseResponse.call_action`` (DynamoDB,
  SES v2, Step Functions, EventBridge, Secrets Manager, SQS, SNS, Lambda, STS, IAM, ...) and
  S3 separately. Errors: one generic XML ``AccessDenied`` for all but S3 (``Access Denied``).
* **Step Functions interpreter.** Service integrations (``lambda:invoke``, ``dynamodb:*``,
  ``aws-sdk:*``, ``events:putEvents``, ``states:startExecution``, SQS, SNS, the Map's S3
  ``ItemReader``/``ResultWriter``) are HTTP calls to this endpoint made by
  ``asl/utils/boto_client.boto_client_for(region, service, state_credentials)`` with the
  fixed key ``ak``; ``state_credentials.role_arn`` (the execution's role, or a Task's
  ``Credentials``) is passed and ignored. Distributed Map children run inside the
  interpreter: no ``StartExecution`` request is made for them.
* **CloudFormation roles.** ``ManagedPolicyArns`` are ignored by moto's ``Role`` model
  (``AWSLambdaBasicExecutionRole``, ``AWSXrayWriteOnlyAccess`` are never attached).

So the hooks are: :func:`_authorize_normal_action` / :func:`_authorize_s3_action` replace
moto's two authorization entry points (the place where moto would authorize), and act only
on role keys; :func:`_sfn_boto_client_for` replaces ``boto_client_for`` in the interpreter.

Known gaps (what AWS checks and the local stack does not, or does differently):

======================================  ===================================================
gap                                     local behaviour
======================================  ===================================================
resource-based policies (bucket and     not evaluated; only identity-based policies of the
queue policies, Lambda permissions,     caller's role (same account: an Allow there is
key and secret policies)                enough, as in AWS for everything the template does)
service principals (EventBridge and     not checked: rule targets of type ``lambda``, SNS
SNS invoking Lambda, SES publishing,    subscriptions, SES event publishing, async
dead-letter and on-failure queues)      invocation destinations act with full access
permission boundaries, SCPs, session    not evaluated (the template uses none)
policies
IAM users' keys                         not evaluated (full access, like ``local``)
signatures, session tokens, expiry      not verified: the access key id selects the role
condition keys                          only ``aws:PrincipalArn``, ``aws:PrincipalAccount``,
                                        ``aws:PrincipalType``, ``aws:RequestedRegion``,
                                        ``aws:SecureTransport`` (false), ``aws:userid``;
                                        every other key is absent (service keys such as
                                        ``ses:FromAddress``, ``dynamodb:LeadingKeys``), so
                                        a condition on it is false (true for negated
                                        operators and ``...IfExists``); the template's
                                        identity policies have no conditions
condition operators                     String*, Arn*, Bool, Null, ``...IfExists``;
                                        numeric, date, IP and ``ForAnyValue``/
                                        ``ForAllValues`` are unsupported: never match
policy variables (``${aws:username}``)  not substituted (matched literally)
resources of operations not modelled    action-only: a statement allowing the action on any
below                                   resource allows it (modelled: DynamoDB item, query,
                                        batch and transaction operations; SES v2 SendEmail,
                                        configuration sets, identities; EventBridge
                                        PutEvents; Step Functions; Secrets Manager; Lambda
                                        functions; S3 (moto's mapping); SQS; SNS; STS)
SES v2 ``SendEmail``: which identity    checked against ``FromEmailAddressIdentityArn`` or
                                        the verified *domain* identity covering the From
                                        address (parents too), else the address identity.
                                        AWS uses the most specific verified identity: the
                                        address when it is verified too - the local stack
                                        verifies ``DefaultFromAddress`` besides
                                        ``SenderIdentity``, so the faithful rule would deny
                                        every send of the template as written (in AWS, with
                                        both verified, the send policies would need
                                        ``identity/${DefaultFromAddress}``)
SES v2 ``SendEmail`` with raw content   only ``ses:SendEmail`` is checked (AWS errors have
                                        been seen naming ``ses:SendRawEmail``; the template
                                        grants both)
SES sandbox: recipients' identities     not checked (the local SES has production access)
S3: a missing object without            404 ``NoSuchKey`` (AWS answers 403 when the role
``s3:ListBucket``                       may not list the bucket); our roles may list
Distributed Map children                run by the interpreter itself: ``states:
                                        StartExecution`` on the machine is not checked at
                                        run time (covered by the static template test)
CloudFormation ``ManagedPolicyArns``    not attached by moto: ``logs:*``/``xray:*`` of
                                        ``AWSLambdaBasicExecutionRole`` and
                                        ``AWSXrayWriteOnlyAccess`` are denied to functions
                                        (nothing calls them locally)
in-process caches                       a value one function fetched (e.g. the unsubscribe
                                        secrets, ``sesflow_aws.secrets``) is served from
                                        the process-wide cache to another function without
                                        a request: only requests are checked
======================================  ===================================================
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import operator
import os
import re
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, unquote

from werkzeug.exceptions import HTTPException

log = logging.getLogger("sesflow.local.iam")

#: ``SESFLOW_LOCAL_IAM=off`` disables enforcement (read by :func:`install`)
ENV_SWITCH = "SESFLOW_LOCAL_IAM"


def enabled() -> bool:
    return os.environ.get(ENV_SWITCH, "on").strip().lower() not in ("off", "0", "false", "no")


# ---------------------------------------------------------------- policy evaluation (pure)
class Decision(Enum):
    ALLOW = "allow"
    IMPLICIT_DENY = "implicit"
    EXPLICIT_DENY = "explicit"


def _strings(value: Any) -> tuple[str, ...]:
    """A policy element as a tuple of strings (``None`` entries, left by ``AWS::NoValue``
    inside a list in moto's CloudFormation, are dropped)."""
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value if v is not None)
    return (str(value),)


@dataclass(frozen=True)
class Statement:
    effect: str  # "Allow" | "Deny"
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] | None = None
    resources: tuple[str, ...] = ()
    not_resources: tuple[str, ...] | None = None
    conditions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Statement:
        return cls(
            effect=str(doc.get("Effect", "Deny")),
            actions=_strings(doc.get("Action")),
            not_actions=_strings(doc["NotAction"]) if "NotAction" in doc else None,
            resources=_strings(doc.get("Resource")),
            not_resources=_strings(doc["NotResource"]) if "NotResource" in doc else None,
            conditions=doc.get("Condition") or {},
        )


def parse_policy(document: Any) -> list[Statement]:
    """Statements of a policy document: a dict (moto's CloudFormation keeps them so), JSON
    text (the IAM API), or URL-encoded JSON (as IAM returns it)."""
    if isinstance(document, (str, bytes)):
        text = document.decode() if isinstance(document, bytes) else document
        try:
            document = json.loads(text)
        except json.JSONDecodeError:
            document = json.loads(unquote(text))
    statements = document.get("Statement", []) if isinstance(document, Mapping) else []
    if isinstance(statements, Mapping):
        statements = [statements]
    return [Statement.from_dict(s) for s in statements if isinstance(s, Mapping)]


@lru_cache(maxsize=4096)
def _glob(pattern: str, case_sensitive: bool) -> re.Pattern[str]:
    """IAM wildcards: ``*`` any run of characters, ``?`` one character."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(f"^{body}$", 0 if case_sensitive else re.IGNORECASE | re.DOTALL)


def action_matches(pattern: str, action: str) -> bool:
    """``service:Action`` patterns, case-insensitive (``*``, ``s3:Get*``)."""
    return bool(_glob(pattern, False).match(action))


def resource_matches(pattern: str, arn: str) -> bool:
    """ARN patterns: wildcards stay within the first five ARN segments (partition, service,
    region, account) and may span ``:`` and ``/`` in the resource part."""
    if pattern == "*":
        return True
    p_parts, a_parts = pattern.split(":", 5), arn.split(":", 5)
    if len(p_parts) != 6 or len(a_parts) != 6:  # not both ARNs: a malformed ARN pattern matches nothing
        return not pattern.startswith("arn:") and bool(_glob(pattern, True).match(arn))
    return all(_glob(p, True).match(a) for p, a in zip(p_parts, a_parts, strict=True))


def _condition_values(value: Any) -> list[str]:
    return [str(v).lower() if isinstance(v, bool) else str(v) for v in _strings(value)]


def _equals(actual: str, wanted: str) -> bool:
    return actual == wanted


def _equals_ignore_case(actual: str, wanted: str) -> bool:
    return actual.lower() == wanted.lower()


def _like(actual: str, wanted: str) -> bool:
    return bool(_glob(wanted, True).match(actual))


#: condition operator -> (value matcher, negated); ArnEquals takes wildcards like ArnLike
_OPERATORS = {
    "StringEquals": (_equals, False),
    "StringNotEquals": (_equals, True),
    "StringEqualsIgnoreCase": (_equals_ignore_case, False),
    "StringNotEqualsIgnoreCase": (_equals_ignore_case, True),
    "StringLike": (_like, False),
    "StringNotLike": (_like, True),
    "ArnEquals": (_like, False),
    "ArnLike": (_like, False),
    "ArnNotEquals": (_like, True),
    "ArnNotLike": (_like, True),
    "Bool": (_equals_ignore_case, False),
}


def condition_holds(operator: str, key: str, expected: Any, context: Mapping[str, Any]) -> bool:
    """One ``Condition`` entry: ``{operator: {key: expected}}``.

    A key absent from the request context makes the entry false, except for negated
    operators and ``...IfExists`` (true) and ``Null`` (tests absence)."""
    op = operator.removesuffix("IfExists")
    wanted = _condition_values(expected)
    present = context.get(key) is not None
    if op == "Null":
        return (not present) == (wanted[:1] == ["true"])
    if op not in _OPERATORS:  # numeric, date, IP, ForAnyValue/ForAllValues
        log.warning("IAM condition operator %s is not supported locally: the statement does not apply", operator)
        return False
    matcher, negated = _OPERATORS[op]
    if not present:
        return operator.endswith("IfExists") or negated
    hit = any(matcher(a, w) for a in _condition_values(context[key]) for w in wanted)
    return hit != negated


def _conditions_hold(conditions: Mapping[str, Mapping[str, Any]], context: Mapping[str, Any]) -> bool:
    return all(
        condition_holds(op, key, expected, context)
        for op, entries in conditions.items()
        for key, expected in (entries or {}).items()
    )


def statement_applies(st: Statement, action: str, resource: str | None, context: Mapping[str, Any]) -> bool:
    """Whether the statement covers this action on this resource (``None``: the resource is
    not modelled, the action alone decides)."""
    if st.not_actions is not None:
        if any(action_matches(p, action) for p in st.not_actions):
            return False
    elif not any(action_matches(p, action) for p in st.actions):
        return False
    if resource is not None:
        if st.not_resources is not None:
            if any(resource_matches(p, resource) for p in st.not_resources):
                return False
        elif not any(resource_matches(p, resource) for p in st.resources):
            return False
    return _conditions_hold(st.conditions, context)


def evaluate(
    policies: Iterable[Iterable[Statement]], action: str, resource: str | None, context: Mapping[str, Any] | None = None
) -> Decision:
    """Identity-based policy evaluation: an explicit Deny wins, then any Allow, else the
    implicit deny."""
    allowed = False
    for policy in policies:
        for st in policy:
            if statement_applies(st, action, resource, context or {}):
                if st.effect == "Deny":
                    return Decision.EXPLICIT_DENY
                allowed = allowed or st.effect == "Allow"
    return Decision.ALLOW if allowed else Decision.IMPLICIT_DENY


def denial_message(
    principal_arn: str, action: str, resource: str | None, decision: Decision, quote_resource: bool = False
) -> str:
    """AWS's wording of an identity-policy denial."""
    on = ""
    if resource and resource != "*":
        on = f' on resource: "{resource}"' if quote_resource else f" on resource: {resource}"
    why = (
        "with an explicit deny in an identity-based policy"
        if decision is Decision.EXPLICIT_DENY
        else f"because no identity-based policy allows the {action} action"
    )
    return f"User: {principal_arn} is not authorized to perform: {action}{on} {why}"


# ---------------------------------------------------------------- principals: role sessions
@dataclass(frozen=True)
class Principal:
    access_key_id: str
    secret_access_key: str
    session_token: str
    role_arn: str
    session_name: str
    account: str

    @property
    def role_name(self) -> str:
        return self.role_arn.rsplit("/", 1)[-1]

    @property
    def arn(self) -> str:
        partition = self.role_arn.split(":")[1]
        return f"arn:{partition}:sts::{self.account}:assumed-role/{self.role_name}/{self.session_name}"

    def environment(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_SESSION_TOKEN": self.session_token,
        }


_lock = threading.Lock()
_by_session: dict[tuple[str, str], Principal] = {}
_by_key: dict[str, Principal] = {}


def _account_of(arn: str) -> str:
    parts = arn.split(":")
    return parts[4] if len(parts) > 4 and parts[4] else "123456789012"


def principal_for_role(role_arn: str, session_name: str, region: str = "us-east-1") -> Principal:
    """The STS session ``session_name`` of ``role_arn`` (assumed in moto once, then reused)."""
    with _lock:
        found = _by_session.get((role_arn, session_name))
        if found is not None:
            return found
        from moto.sts.models import sts_backends
        from moto.utilities.utils import get_partition

        account = _account_of(role_arn)
        session = sts_backends[account][get_partition(region)].assume_role(
            region_name=region,
            role_session_name=session_name[:64],
            role_arn=role_arn,
            policy="",
            duration=43200,
            external_id="",
        )
        principal = Principal(
            session.access_key_id,
            session.secret_access_key,
            session.session_token,
            role_arn,
            session.session_name,
            account,
        )
        _by_session[(role_arn, session_name)] = principal
        _by_key[principal.access_key_id] = principal
        return principal


def principal_for_key(access_key_id: str, account: str = "123456789012") -> Principal | None:
    """The role session an access key belongs to: ours, or any STS session of moto (a role
    assumed through the API is enforced too); ``None`` for every other key."""
    found = _by_key.get(access_key_id)
    if found is not None or not access_key_id.startswith("ASIA"):
        return found
    from moto.sts.models import sts_backends

    session = sts_backends[account]["aws"].get_assumed_role_from_access_key(access_key_id)
    if session is None:
        return None
    principal = Principal(
        session.access_key_id,
        session.secret_access_key,
        session.session_token,
        session.role_arn,
        session.session_name,
        _account_of(session.role_arn),
    )
    with _lock:
        _by_key[access_key_id] = principal
    return principal


def function_credentials(role_arn: str | None, function_name: str) -> dict[str, str]:
    """The environment a Lambda invocation gets for its role (empty when IAM is off)."""
    if not _INSTALLED or not role_arn:
        return {}
    return principal_for_role(role_arn, function_name).environment()


def _endpoint() -> str:
    return f"http://127.0.0.1:{os.environ['MOTO_PORT']}"


def client_as(role_arn: str | None, service: str, region: str, config: Any = None) -> Any:
    """A client of this server signed as ``role_arn`` (the ``local`` key when IAM is off or
    there is no role); without ``config``, one per role, service and region (reused)."""
    if config is None:
        return _cached_client_as(role_arn, service, region, _endpoint(), _INSTALLED)
    return _new_client_as(role_arn, service, region, config)


@functools.lru_cache(maxsize=256)
def _cached_client_as(role_arn: str | None, service: str, region: str, endpoint: str, enforced: bool) -> Any:
    return _new_client_as(role_arn, service, region, None)  # (endpoint, enforced): the cache key


def _new_client_as(role_arn: str | None, service: str, region: str, config: Any) -> Any:
    import boto3

    if _INSTALLED and role_arn:
        p = principal_for_role(role_arn, _SERVICE_SESSION, region)
        key, secret, token = p.access_key_id, p.secret_access_key, p.session_token
    else:
        key, secret, token = "local", "local", None  # the local emulator's full-access key
    return boto3.client(  # type: ignore[call-overload]
        service,
        region_name=region,
        endpoint_url=_endpoint(),
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        aws_session_token=token,
        config=config,
    )


#: session name of the roles AWS services assume (state machines, EventBridge targets)
_SERVICE_SESSION = "sesflow-local-service"


# ---------------------------------------------------------------- roles' policies (moto IAM)
def role_policies(role_arn: str) -> list[list[Statement]]:
    """Inline and attached managed policies of the role, read from moto's IAM now."""
    from moto.iam.models import iam_backends

    partition = role_arn.split(":")[1] if role_arn.count(":") >= 5 else "aws"
    try:
        role = iam_backends[_account_of(role_arn)][partition].get_role(role_arn.rsplit("/", 1)[-1])
    except Exception:  # the role is gone (stack deleted): nothing is allowed
        return []
    documents = list(role.policies.values())
    for managed in list(role.managed_policies.values()):
        version = next((v for v in managed.versions if v.is_default), None)
        if version is not None:
            documents.append(version.document)
    # parsed once per set of documents: moto replaces a document when a policy changes (a new
    # object), and the entry holds the documents it was made from, so their ids stay theirs
    cached = _PARSED.get(role_arn)
    if cached is not None and len(cached[0]) == len(documents) and all(map(operator.is_, cached[0], documents)):
        return list(cached[1])
    policies = [parse_policy(doc) for doc in documents]
    _PARSED[role_arn] = (tuple(documents), tuple(policies))
    return policies


#: role ARN -> (the policy documents, their statements): :func:`role_policies`
_PARSED: dict[str, tuple[tuple[Any, ...], tuple[list[Statement], ...]]] = {}


# ---------------------------------------------------------------- request -> (action, resources)
_ACTION_NAMES = {
    ("lambda", "Invoke"): "InvokeFunction",
    ("lambda", "InvokeWithResponseStream"): "InvokeFunction",
    ("sqs", "SendMessageBatch"): "SendMessage",
    ("sqs", "DeleteMessageBatch"): "DeleteMessage",
    ("sqs", "ChangeMessageVisibilityBatch"): "ChangeMessageVisibility",
    ("sns", "PublishBatch"): "Publish",
}
_PREFIXES = {"monitoring": "cloudwatch", "email": "ses"}


def iam_action(signing_name: str, operation: str) -> str:
    prefix = _PREFIXES.get(signing_name, signing_name)
    return f"{prefix}:{_ACTION_NAMES.get((prefix, operation), operation)}"


def _json_body(resp: Any) -> dict[str, Any]:
    for raw in (getattr(resp, "raw_body", None), getattr(resp, "body", None)):
        if isinstance(raw, dict):
            return raw
        if raw:
            try:
                doc = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
            except (ValueError, UnicodeDecodeError):
                continue
            if isinstance(doc, dict):
                return doc
    return {}


Target = tuple[str, "str | None"]  # (IAM action, resource ARN; None = not modelled)


def _dynamodb(op: str, body: Mapping[str, Any], region: str, account: str) -> list[Target]:
    def table(name: str, index: str | None = None) -> str:
        arn = name if name.startswith("arn:") else f"arn:aws:dynamodb:{region}:{account}:table/{name}"
        return f"{arn}/index/{index}" if index else arn

    if op in ("BatchGetItem", "BatchWriteItem"):
        return [(f"dynamodb:{op}", table(t)) for t in body.get("RequestItems", {})]
    if op in ("TransactGetItems", "TransactWriteItems"):
        kinds = {
            "Get": "GetItem",
            "Put": "PutItem",
            "Update": "UpdateItem",
            "Delete": "DeleteItem",
            "ConditionCheck": "ConditionCheckItem",
        }
        return [
            (f"dynamodb:{kinds[k]}", table(v["TableName"]))
            for item in body.get("TransactItems", [])
            for k, v in item.items()
            if k in kinds
        ]
    if "TableName" in body:
        index = body.get("IndexName") if op in ("Query", "Scan") else None
        return [(f"dynamodb:{op}", table(str(body["TableName"]), index))]
    return [(f"dynamodb:{op}", "*")]


def _ses_identity(region: str, account: str, address: str) -> str:
    """The identity SES authorizes a From address against (see the gaps table)."""
    from moto.ses.models import ses_backends

    identities = ses_backends[account][region].email_identities
    domain = address.rpartition("@")[2].lower()
    labels = domain.split(".")
    for i in range(len(labels) - 1):
        if ".".join(labels[i:]) in identities:
            return f"arn:aws:ses:{region}:{account}:identity/{'.'.join(labels[i:])}"
    return f"arn:aws:ses:{region}:{account}:identity/{address if address in identities else domain}"


def _sesv2(op: str, resp: Any, region: str, account: str) -> list[Target]:
    path: str = getattr(resp, "path", "") or ""
    if op == "SendEmail":
        from email.parser import BytesParser
        from email.utils import parseaddr

        body = _json_body(resp)
        targets: list[Target] = []
        identity = body.get("FromEmailAddressIdentityArn")
        if not identity:
            source = body.get("FromEmailAddress")
            raw = body.get("Content", {}).get("Raw", {}).get("Data")
            if not source and raw:
                source = str(BytesParser().parsebytes(base64.b64decode(raw), headersonly=True)["From"] or "")
            identity = _ses_identity(region, account, parseaddr(source or "")[1])
        targets.append(("ses:SendEmail", identity))
        if body.get("ConfigurationSetName"):
            targets.append(
                ("ses:SendEmail", f"arn:aws:ses:{region}:{account}:configuration-set/{body['ConfigurationSetName']}")
            )
        return targets
    if op in (
        "GetAccount",
        "PutSuppressedDestination",
        "PutAccountSendingAttributes",
        "GetSuppressedDestination",
        "DeleteSuppressedDestination",
        "ListSuppressedDestinations",
        "ListEmailIdentities",
        "ListConfigurationSets",
    ):
        return [(f"ses:{op}", "*")]
    m = re.match(r"^/v2/email/(configuration-sets|identities)/([^/]+)", path)
    if m:
        kind = "configuration-set" if m.group(1) == "configuration-sets" else "identity"
        return [(f"ses:{op}", f"arn:aws:ses:{region}:{account}:{kind}/{unquote(m.group(2))}")]
    return [(f"ses:{op}", None)]


def _events(op: str, body: Mapping[str, Any], region: str, account: str) -> list[Target]:
    def bus(name: str) -> str:
        return name if name.startswith("arn:") else f"arn:aws:events:{region}:{account}:event-bus/{name}"

    if op == "PutEvents":
        return [("events:PutEvents", bus(str(e.get("EventBusName") or "default"))) for e in body.get("Entries", [])]
    return [(f"events:{op}", None)]


def _states(op: str, body: Mapping[str, Any]) -> list[Target]:
    for key in ("executionArn", "stateMachineArn", "mapRunArn", "activityArn"):
        if body.get(key):
            return [(f"states:{op}", str(body[key]))]
    if op.startswith("SendTask") or op.startswith("List"):
        return [(f"states:{op}", "*")]
    return [(f"states:{op}", None)]


def _secretsmanager(op: str, body: Mapping[str, Any], region: str, account: str) -> list[Target]:
    secret_id = body.get("SecretId")
    if not secret_id:
        return [(f"secretsmanager:{op}", "*" if op.startswith(("List", "Get")) else None)]
    from moto.secretsmanager.models import secretsmanager_backends

    secret = secretsmanager_backends[account][region].secrets.get(str(secret_id))
    if secret is not None:
        return [(f"secretsmanager:{op}", str(secret.arn))]
    arn = str(secret_id)
    if not arn.startswith("arn:"):
        arn = f"arn:aws:secretsmanager:{region}:{account}:secret:{arn}"
    return [(f"secretsmanager:{op}", arn)]


def _lambda(op: str, resp: Any, region: str, account: str) -> list[Target]:
    path: str = getattr(resp, "path", "") or ""
    m = re.search(r"/functions/([^/]+)", path)
    if not m:
        return [(iam_action("lambda", op), "*" if op.startswith("List") else None)]
    name = unquote(m.group(1))
    arn = name if name.startswith("arn:") else f"arn:aws:lambda:{region}:{account}:function:{name}"
    parsed = getattr(resp, "parsed_url", None)
    qualifier = parse_qs(parsed.query).get("Qualifier", [None])[0] if parsed is not None else None
    if qualifier and arn.count(":") == 6:
        arn = f"{arn}:{qualifier}"
    return [(iam_action("lambda", op), arn)]


def request_targets(resp: Any, signing_name: str, op: str, resource: str = "*") -> list[Target]:
    """The (IAM action, resource) pairs a request needs, for the services our template uses;
    ``resource`` is what moto determined (SQS queue, IAM/STS role), else ``"*"``."""
    region, account = resp.region, resp.current_account
    if signing_name == "dynamodb":
        return _dynamodb(op, _json_body(resp), region, account)
    if signing_name == "ses" and str(getattr(resp, "path", "")).startswith("/v2/"):
        return _sesv2(op, resp, region, account)
    if signing_name == "events":
        return _events(op, _json_body(resp), region, account)
    if signing_name == "states":
        return _states(op, _json_body(resp))
    if signing_name == "secretsmanager":
        return _secretsmanager(op, _json_body(resp), region, account)
    if signing_name == "lambda":
        return _lambda(op, resp, region, account)
    if signing_name in ("sqs", "iam", "sts"):
        return [(iam_action(signing_name, op), resource)]
    if signing_name == "sns":
        topic = resp._get_param("TopicArn") or resp._get_param("TargetArn")
        return [(iam_action("sns", op), str(topic) if topic else ("*" if op.startswith("List") else None))]
    return [(iam_action(signing_name, op), None)]


# ---------------------------------------------------------------- the decision + its error
class AccessDenied(HTTPException):
    """The service's own denial: status, code and body shape per protocol."""

    def __init__(self, status: int, body: str, headers: dict[str, str]) -> None:
        super().__init__(description=body)
        self.code = status
        self.extra_headers = headers


#: signing name -> protocol of its AccessDenied (JSON services are the default)
_REST_JSON = frozenset({"lambda", "ses"})  # SES v2; SES v1 (query) is told apart by its path
_QUERY = frozenset({"sns", "sts", "iam", "cloudformation", "ec2", "rds"})


def _denied_response(signing_name: str, message: str, path: str = "") -> AccessDenied:
    if signing_name == "dynamodb":
        body = json.dumps({"__type": "com.amazon.coral.service#AccessDeniedException", "Message": message})
        return AccessDenied(400, body, {"Content-Type": "application/x-amz-json-1.0"})
    if signing_name in _REST_JSON and (signing_name != "ses" or path.startswith("/v2/")):
        body = json.dumps({"__type": "AccessDeniedException", "message": message})
        return AccessDenied(
            403, body, {"Content-Type": "application/json", "x-amzn-ErrorType": "AccessDeniedException"}
        )
    if signing_name == "sqs":  # JSON protocol, query-compatible error code
        body = json.dumps({"__type": "com.amazonaws.sqs#AccessDenied", "message": message})
        return AccessDenied(
            403, body, {"Content-Type": "application/x-amz-json-1.0", "x-amzn-query-error": "AccessDenied;Sender"}
        )
    if signing_name in _QUERY or signing_name == "ses":
        code = "AuthorizationError" if signing_name == "sns" else "AccessDenied"
        body = (
            "<ErrorResponse><Error><Type>Sender</Type>"
            f"<Code>{code}</Code><Message>{_xml_escape(message)}</Message></Error>"
            "<RequestId>0</RequestId></ErrorResponse>"
        )
        return AccessDenied(403, body, {"Content-Type": "text/xml"})
    body = json.dumps({"__type": "AccessDeniedException", "message": message})
    return AccessDenied(400, body, {"Content-Type": "application/x-amz-json-1.1"})


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


#: decisions since start: {"allowed"|"denied": {"<role name> <action>": count}}
_STATS: dict[str, Counter[str]] = {"allowed": Counter(), "denied": Counter()}
_stats_lock = threading.Lock()


def stats() -> dict[str, Any]:
    """For ``GET /_sesflow/stats``."""
    with _stats_lock:
        return {"mode": "enforced" if _INSTALLED else "off", **{k: dict(sorted(v.items())) for k, v in _STATS.items()}}


def check(principal: Principal, targets: list[Target], region: str) -> tuple[Decision, str, str | None]:
    """The first denied (action, resource) of the request, or ALLOW."""
    policies = role_policies(principal.role_arn)
    context = {
        "aws:PrincipalArn": principal.role_arn,
        "aws:PrincipalAccount": principal.account,
        "aws:PrincipalType": "AssumedRole",
        "aws:RequestedRegion": region,
        "aws:SecureTransport": "false",
        "aws:userid": f"{principal.role_name}:{principal.session_name}",
    }
    for action, resource in targets:
        decision = evaluate(policies, action, resource, context)
        with _stats_lock:
            _STATS["allowed" if decision is Decision.ALLOW else "denied"][f"{principal.role_name} {action}"] += 1
        if decision is not Decision.ALLOW:
            return decision, action, resource
    return Decision.ALLOW, "", None


def _credential(resp: Any) -> tuple[str, str] | None:
    """(access key id, signing name) of a SigV4 request (header or presigned query)."""
    auth = resp.headers.get("Authorization") or ""
    scope = auth.partition("Credential=")[2].partition(",")[0]
    if not scope:
        qs = getattr(resp, "querystring", {}) or {}
        value = qs.get("X-Amz-Credential")
        scope = (value[0] if isinstance(value, list) else value) or ""
    parts = scope.split("/")
    return (parts[0], parts[3]) if len(parts) >= 5 else None


def _principal_of(resp: Any) -> tuple[Principal, str] | None:
    cred = _credential(resp)
    if cred is None:
        return None
    principal = principal_for_key(cred[0], getattr(resp, "current_account", "123456789012"))
    return (principal, cred[1]) if principal is not None else None


# ---------------------------------------------------------------- hooks into moto
_ORIGINAL: dict[str, Any] = {}
_INSTALLED = False


def _authorize_normal_action(self: Any, resource: str = "*") -> None:
    """Replaces ``ActionAuthenticatorMixin._authenticate_and_authorize_normal_action``."""
    found = _principal_of(self)
    if found is None:
        _ORIGINAL["normal"](self, resource)
        return
    principal, signing_name = found
    op = self._get_action()
    if iam_action(signing_name, op) == "sts:GetCallerIdentity":  # always allowed, as in AWS
        return
    decision, action, denied = check(principal, request_targets(self, signing_name, op, resource), self.region)
    if decision is Decision.ALLOW:
        return
    message = denial_message(principal.arn, action, denied, decision)
    log.info("AccessDenied: %s", message)
    error = _denied_response(signing_name, message, str(getattr(self, "path", "")))
    self.response_headers.update(error.extra_headers)
    raise error


def _authorize_s3_action(self: Any, bucket_name: str | None = None, key_name: str | None = None) -> None:
    """Replaces ``ActionAuthenticatorMixin._authenticate_and_authorize_s3_action``."""
    found = _principal_of(self)
    if found is None:
        _ORIGINAL["s3"](self, bucket_name, key_name)
        return
    principal, _ = found
    from moto.s3.exceptions import S3ClientError

    arn = f"{bucket_name or '*'}/{key_name}" if key_name else (bucket_name or "*")
    action = f"s3:{self.data.get('Action', 'GetObject')}"
    decision, action, denied = check(principal, [(action, f"arn:aws:s3:::{arn}")], self.region)
    if decision is Decision.ALLOW:
        return
    message = denial_message(principal.arn, action, denied, decision, quote_resource=True)
    log.info("AccessDenied: %s", message)
    raise S3ClientError("AccessDenied", message)


def _sfn_boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
    """Replaces the Step Functions interpreter's ``boto_client_for``: integrations are signed
    with the execution's role (``state_credentials.role_arn``) instead of the key ``ak``."""
    role_arn = getattr(state_credentials, "role_arn", None)
    if not role_arn:
        return _ORIGINAL["boto_client_for"](region=region, service=service, state_credentials=state_credentials)
    with _lock:
        cached = _sfn_clients.get((role_arn, service, region))
    if cached is not None:
        return cached
    from botocore.config import Config
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds

    config = Config(
        parameter_validation=False,
        retries={"max_attempts": 0, "total_max_attempts": 1},
        connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
        read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
    )
    client = client_as(role_arn, service, region, config)
    with _lock:
        _sfn_clients[(role_arn, service, region)] = client
    return client


#: (role, service, region) -> the interpreter's client (boto3 clients are thread-safe)
_sfn_clients: dict[tuple[str, str, str], Any] = {}


def _patch_sfn_clients() -> None:
    import sys

    from moto.stepfunctions.parser.asl.utils import boto_client

    original = boto_client.boto_client_for
    _ORIGINAL["boto_client_for"] = original
    boto_client.boto_client_for = _sfn_boto_client_for  # modules imported later take this one
    for name, module in list(sys.modules.items()):
        if name.startswith("moto.stepfunctions.parser") and getattr(module, "boto_client_for", None) is original:
            module.boto_client_for = _sfn_boto_client_for  # type: ignore[attr-defined]


def install() -> bool:
    """Hook the evaluator into moto (idempotent); returns whether IAM is enforced."""
    global _INSTALLED
    if _INSTALLED or not enabled():
        return _INSTALLED
    from moto.core.authorization import ActionAuthenticatorMixin

    _ORIGINAL["normal"] = ActionAuthenticatorMixin._authenticate_and_authorize_normal_action
    _ORIGINAL["s3"] = ActionAuthenticatorMixin._authenticate_and_authorize_s3_action
    ActionAuthenticatorMixin._authenticate_and_authorize_normal_action = _authorize_normal_action  # type: ignore[method-assign]
    ActionAuthenticatorMixin._authenticate_and_authorize_s3_action = _authorize_s3_action  # type: ignore[method-assign]
    _patch_sfn_clients()
    _INSTALLED = True
    return True

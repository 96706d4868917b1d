#!/usr/bin/env bash
# schemathesis against every service's OpenAPI document, on the running system (scripts/up.sh
# first; the services' addresses come from services.tsv, as up.sh starts them). Per service it
# reads GET /openapi.json, generates requests for every operation (schema-valid and
# schema-violating ones, then stateful sequences along the links it infers) and checks each
# response:
#
#   not_a_server_error            no 5xx
#   status_code_conformance       the status is one the operation documents
#   content_type_conformance      the Content-Type is the documented one
#   response_headers_conformance  documented response headers are present and valid
#   response_schema_conformance   the body matches the documented schema
#   negative_data_rejection       a request that breaks the document is refused with a 4xx
#   missing_required_header       a request without a required header is refused
#   unsupported_method            a method the path does not document answers 405
#
# Not fuzzed: order-svc's GET /orders/events (a live stream of many orders, Server-Sent Events),
# which never ends by itself, so every request would run into --request-timeout whatever the
# answer. GET /orders/{id}/events is fuzzed: an unknown id is a 404 at once, and the orders the
# fuzzer can place (SKUs without stock) are cancelled within moments, which ends their stream.
#
# Left out: positive_data_acceptance (a schema-valid id of nothing is a 404, and the id rule,
# no control or invisible characters, is more than JSON Schema can say) and
# ensure_resource_availability (a write answers 202 before the read model has the resource).
#
#   scripts/api-fuzz.sh                          every service, 100 test cases per operation
#   scripts/api-fuzz.sh --max-examples 20 order-svc inventory-svc
#
# Options
#   --max-examples N   test cases per operation and phase (100; env API_FUZZ_MAX_EXAMPLES)
#   --seed N           the generator's seed (1; env API_FUZZ_SEED): the same seed sends the
#                      same requests
#   SERVICE...         only these (names from services.tsv)
# Env: RUN_DIR (run), API_FUZZ_DIR (<RUN_DIR>/api-fuzz: per service the JSON report and the
#      console output of schemathesis), API_TOKEN (the bearer token of `up.sh --secure`;
#      default: the contents of <RUN_DIR>/api-token when that file exists).
#
# Prints per service the operations tested, the test cases run and the failures, and writes
# the totals as one line to <API_FUZZ_DIR>/totals.txt. Exits 1 when any check failed or
# schemathesis could not test an operation.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MAX_EXAMPLES="${API_FUZZ_MAX_EXAMPLES:-100}"
SEED="${API_FUZZ_SEED:-1}"
selected=()
while (($# > 0)); do
  case "$1" in
    --max-examples) MAX_EXAMPLES=$2; shift ;;
    --seed) SEED=$2; shift ;;
    -h | --help)
      sed -n '2,40p' "$0"
      exit 0
      ;;
    -*) die "unknown option: $1 (see --help)" ;;
    *)
      is_service "$1" || die "unknown service '$1' (one of: ${SERVICES[*]})"
      selected+=("$1")
      ;;
  esac
  shift
done
[[ "$MAX_EXAMPLES" =~ ^[1-9][0-9]*$ ]] || die "--max-examples must be a positive integer"
[[ "$SEED" =~ ^[0-9]+$ ]] || die "--seed must be a non-negative integer"
((${#selected[@]} > 0)) || selected=("${SERVICES[@]}")

CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,missing_required_header,unsupported_method

ST=$(schemathesis_bin)
[[ -n "$ST" ]] || die "schemathesis $SCHEMATHESIS_VERSION is not installed (scripts/install.sh schemathesis)"

API_FUZZ_DIR="${API_FUZZ_DIR:-$RUN_DIR/api-fuzz}"
mkdir -p "$API_FUZZ_DIR"
API_FUZZ_DIR="$(cd "$API_FUZZ_DIR" && pwd)"

# A config file of our own, always given: without one schemathesis would take any
# schemathesis.toml it finds in a parent folder. It reads the token from its environment
# through this file, never from its arguments, which ps shows.
CONFIG="$API_FUZZ_DIR/schemathesis.toml"
echo "# written by scripts/api-fuzz.sh" >"$CONFIG"
if [[ -z "${API_TOKEN:-}" && -s "$RUN_DIR/api-token" ]]; then
  API_TOKEN=$(<"$RUN_DIR/api-token")
fi
if [[ -n "${API_TOKEN:-}" ]]; then
  export API_TOKEN
  # shellcheck disable=SC2016 # schemathesis expands ${API_TOKEN}, not the shell
  printf '%s\n' '[headers]' 'Authorization = "Bearer ${API_TOKEN}"' >>"$CONFIG"
fi

# read_report SERVICE REPORT  two lines from schemathesis' JSON report: the counts
# "OPERATIONS TEST_CASES FAILURES", then "SERVICE: N/N operations, N test cases, N failures
# (which), Ns". Exit status 1 when the report holds failures or errors.
read_report() {
  python3 - "$1" "$2" <<'PY'
import json, sys

service, path = sys.argv[1], sys.argv[2]
report = json.load(open(path))
# A run that could not start (no document, a document that does not parse) has no operations.
operations = report.get("operations") or {"tested": 0, "selected": 0, "errored": 0}
cases = report["test_cases"]
failures = report["failures"]
errors = report["errors"]
complete = report.get("complete", False)
kinds = "; ".join(f"{f['code']} {f['title']}: {f['count']} in {', '.join(f['operations'])}" for f in failures)
print(operations["tested"], cases["generated"], cases["unique_failures"])
print(
    f"{service}: {operations['tested']}/{operations['selected']} operations, "
    f"{cases['generated']} test cases, {cases['unique_failures']} failures"
    + (f" ({kinds})" if kinds else "")
    + (f", {len(errors)} errors ({'; '.join(e['title'] for e in errors)})" if errors else "")
    + ("" if complete else f", stopped early ({report.get('stop_reason')})")
    + f", {report.get('running_time') or 0:.0f}s"
)
sys.exit(1 if failures or errors or cases["errored"] or operations["errored"] or not complete else 0)
PY
}

fuzz_start=$(now_s)
failed=()
total_operations=0
total_cases=0
total_failures=0
for svc in "${selected[@]}"; do
  url=$(service_url "$svc")
  dir="$API_FUZZ_DIR/$svc"
  rm -rf "$dir"
  mkdir -p "$dir"
  log "[api-fuzz] $svc: schemathesis against $url/openapi.json (at most $MAX_EXAMPLES test cases per operation, seed $SEED)"
  rc=0
  # Streams that never end by themselves (see the top of this file).
  excluded=()
  [[ "$svc" == order-svc ]] && excluded=(--exclude-path /orders/events)
  # From its own folder: schemathesis writes nothing into the repository.
  (cd "$dir" && "$ST" --config-file "$CONFIG" run "$url/openapi.json" \
    --checks "$CHECKS" \
    ${excluded[@]+"${excluded[@]}"} \
    --max-examples "$MAX_EXAMPLES" \
    --seed "$SEED" \
    --generation-database none \
    --workers 1 \
    --request-timeout 10 \
    --wait-for-schema 30 \
    --no-color \
    --report json --report-json-path "$dir/report.json") >"$dir/schemathesis.txt" 2>&1 || rc=$?
  if [[ ! -s "$dir/report.json" ]]; then
    cat "$dir/schemathesis.txt" >&2
    log "[api-fuzz] $svc: FAILED: schemathesis exited $rc without a report"
    failed+=("$svc")
    continue
  fi
  report_rc=0
  report=$(read_report "$svc" "$dir/report.json") || report_rc=$?
  read -r operations cases failures <<<"${report%%$'\n'*}"
  line=${report#*$'\n'}
  total_operations=$((total_operations + operations))
  total_cases=$((total_cases + cases))
  total_failures=$((total_failures + failures))
  if ((rc != 0 || report_rc != 0)); then
    # The failures, each with a curl command that reproduces it; or all of the output when
    # schemathesis stopped before it had any (e.g. it could not load the document).
    details=$(sed -n '/^=* \(FAILURES\|ERRORS\) =*$/,/^=* SUMMARY =*$/p' "$dir/schemathesis.txt")
    if [[ -n "$details" ]]; then echo "$details" >&2; else cat "$dir/schemathesis.txt" >&2; fi
    log "[api-fuzz] FAILED $line (exit $rc; full output $dir/schemathesis.txt)"
    failed+=("$svc")
  else
    log "[api-fuzz] $line"
  fi
done

took=$(($(now_s) - fuzz_start))
totals="${#selected[@]} services, $total_operations operations, $total_cases test cases, $total_failures failures in $(fmt_duration "$took")"
echo "$totals" >"$API_FUZZ_DIR/totals.txt"
if ((${#failed[@]} > 0)); then
  log "[api-fuzz] FAILED ($totals): ${failed[*]}"
  exit 1
fi
log "[api-fuzz] passed: $totals"

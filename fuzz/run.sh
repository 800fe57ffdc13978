#!/bin/sh
# Runs libFuzzer targets for FUZZ_SECONDS each, FUZZ_JOBS at a time; called by
# `make fuzz` and `make fuzz-ci` (docs/fuzzing.md). Fails if any target crashes, leaks,
# trips a sanitizer, times out on an input or does not run.
#
#   FB=build-fuzz FUZZ_SECONDS=60 FUZZ_JOBS=2 fuzz/run.sh fuzz_http fuzz_path ...
#
# Each target starts from its committed seeds (fuzz/corpus/<target>, read only) and what
# earlier local runs found ($FB/corpus/<target>, where new inputs go). A failing input is
# saved as $FB/crashes/<target>/crash-*; the log is $FB/logs/<target>.log.
set -u

FB=${FB:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_JOBS=${FUZZ_JOBS:-2}
here=$(cd "$(dirname "$0")" && pwd)

# Per-target libFuzzer flags: the longest input worth trying, and a dictionary.
target_flags() {
	case "$1" in
	fuzz_http) echo "-max_len=65536 -dict=$here/fuzz_http.dict" ;;
	fuzz_api_json) echo "-max_len=16384 -dict=$here/fuzz_api_json.dict" ;;
	fuzz_proto_agent | fuzz_proto_host) echo "-max_len=65536" ;;
	fuzz_path) echo "-max_len=8192" ;;
	esac
}

run_one() {
	t=$1
	mkdir -p "$FB/corpus/$t" "$FB/crashes/$t" "$FB/logs" "$here/corpus/$t"
	# shellcheck disable=SC2046
	"$FB/bin/$t" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$FB/crashes/$t/" $(target_flags "$t") \
		"$FB/corpus/$t" "$here/corpus/$t" >"$FB/logs/$t.log" 2>&1
	echo $? >"$FB/logs/$t.rc"
}

summary() {
	t=$1
	rc=$(cat "$FB/logs/$t.rc" 2>/dev/null || echo 99)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$FB/logs/$t.log" | tail -n 1)
	speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$FB/logs/$t.log" | tail -n 1)
	cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$FB/logs/$t.log" | tail -n 1)
	corpus=$(grep -o 'corp: [0-9]*/[0-9a-zA-Z]*' "$FB/logs/$t.log" | tail -n 1)
	if [ "$rc" = 0 ]; then result=ok; else result="FAILED (exit $rc)"; fi
	printf '%-18s %6ss  execs %-10s (%s/s)  %s  %s  %s\n' "$t" "$FUZZ_SECONDS" "${execs:-?}" \
		"${speed:-?}" "${cov:-cov: ?}" "${corpus:-corp: ?}" "$result"
}

echo "fuzzing $# targets for ${FUZZ_SECONDS}s each, $FUZZ_JOBS at a time (logs in $FB/logs)"
set -- "$@"
pids=""
running=0
for t in "$@"; do
	if [ ! -x "$FB/bin/$t" ]; then
		echo "$t: $FB/bin/$t is missing (make fuzz-build)" >&2
		exit 1
	fi
	run_one "$t" &
	pids="$pids $!"
	running=$((running + 1))
	if [ "$running" -ge "$FUZZ_JOBS" ]; then
		wait
		running=0
	fi
done
wait

failed=0
for t in "$@"; do
	summary "$t"
	if [ "$(cat "$FB/logs/$t.rc" 2>/dev/null || echo 99)" != 0 ]; then
		failed=1
		echo "---- $t: the end of $FB/logs/$t.log" >&2
		tail -n 40 "$FB/logs/$t.log" >&2
		ls "$FB/crashes/$t" >&2
	fi
done
exit $failed

#!/usr/bin/env bash
# Runs every fuzz target of citybooks for SECONDS_PER_TARGET seconds (default 60), one
# after the other, one job each, under `nice -n 19`; prints each target's executions and
# crashes; exits 1 if any target found a crash (or timeout / out-of-memory), 2 if the
# tools are missing or the build fails.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#   FUZZ_UPDATE_CORPUS=1 fuzz/run.sh 300     # also merge what was found into corpus/ and minimize it
#
# The committed corpus (fuzz/corpus/<target>) is read, never written: new inputs go to
# fuzz/target/corpus-run/<target>. Crashes go to fuzz/artifacts/<target>/. Needs the
# nightly toolchain and cargo-fuzz (see fuzz/README.md).
set -uo pipefail

cd "$(dirname "$0")"
SECONDS_PER_TARGET=${1:-60}
shift || true
ALL_TARGETS=(csv_records header_dialect conform_row money_fiscal sftp_jail sql_gate line_index)
if [ $# -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "run.sh: needs the nightly toolchain and cargo-fuzz:" >&2
    echo "  rustup toolchain install nightly && cargo install cargo-fuzz --locked" >&2
    exit 2
fi

# -s none: no AddressSanitizer (the code under test is safe Rust; the oracles are
# assertions), which halves the build and doubles the executions per second.
FUZZ=(nice -n 19 cargo +nightly fuzz)
BUILD_OPTS=(-s none)

# A corpus folder is only missing on a fresh checkout without the committed corpus.
for t in "${TARGETS[@]}"; do
    if [ ! -d "corpus/$t" ]; then python3 seeds/make_seeds.py; break; fi
done

echo "building the fuzz targets (instrumented; the first build takes long)..."
if ! "${FUZZ[@]}" build "${BUILD_OPTS[@]}" >target-build.log 2>&1; then
    tail -30 target-build.log >&2
    echo "run.sh: the build failed (full log: fuzz/target-build.log)" >&2
    exit 2
fi
rm -f target-build.log

failed=0
summary=()
for t in "${TARGETS[@]}"; do
    case "$t" in
        # A statement that runs long is cut by the target's own 2 s timeout; libFuzzer's
        # is the backstop. DataFusion sessions need more memory than a parser.
        sql_gate) limits=(-timeout=30 -rss_limit_mb=4096 -max_len=2048) ;;
        csv_records) limits=(-timeout=10 -rss_limit_mb=2048 -max_len=8192) ;;
        *) limits=(-timeout=10 -rss_limit_mb=2048 -max_len=4096) ;;
    esac
    mkdir -p "artifacts/$t" "target/corpus-run/$t"
    find "artifacts/$t" -type f | sort >"target/artifacts-before-$t"
    log="target/fuzz-$t.log"
    start=$(date +%s)
    # Absolute paths: the sql_gate target moves into a temporary folder of its own.
    "${FUZZ[@]}" run "${BUILD_OPTS[@]}" "$t" "$PWD/target/corpus-run/$t" "$PWD/corpus/$t" -- \
        -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 \
        -artifact_prefix="$PWD/artifacts/$t/" "${limits[@]}" >"$log" 2>&1
    status=$?
    elapsed=$(( $(date +%s) - start ))
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
    new_artifacts=$(find "artifacts/$t" -type f | sort | comm -13 "target/artifacts-before-$t" -)
    crashes=$(printf '%s' "$new_artifacts" | grep -c . || true)
    if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        # libFuzzer died without writing an artifact (a build or harness problem).
        crashes=1
        tail -20 "$log" >&2
    fi
    line=$(printf '%-15s %6ss  %12s execs  %7s exec/s  cov %6s  crashes %s' \
        "$t" "$elapsed" "${execs:-?}" "${rate:-?}" "${cov:-?}" "$crashes")
    echo "$line"
    summary+=("$line")
    if [ "$crashes" -gt 0 ]; then
        failed=1
        grep -m3 -E 'panicked at|ERROR: libFuzzer' "$log" | sed 's/^/    /'
        printf '%s\n' "$new_artifacts" | grep . | sed 's/^/    artifact: fuzz\//'
        echo "    log: fuzz/$log"
    fi
    if [ "${FUZZ_UPDATE_CORPUS:-0}" = 1 ]; then
        cp -n "target/corpus-run/$t"/* "corpus/$t"/ 2>/dev/null
        "${FUZZ[@]}" cmin "${BUILD_OPTS[@]}" "$t" "$PWD/corpus/$t" -- "${limits[@]}" >"target/cmin-$t.log" 2>&1
        echo "    corpus/$t: $(find "corpus/$t" -type f | wc -l) files, $(du -sk "corpus/$t" | cut -f1) KiB after cmin"
    fi
done

echo
echo "summary (${SECONDS_PER_TARGET}s per target):"
printf '  %s\n' "${summary[@]}"
if [ "$failed" -ne 0 ]; then
    echo "run.sh: crashes found; reproduce one with: cargo +nightly fuzz run -s none TARGET fuzz/artifacts/TARGET/FILE" >&2
    exit 1
fi

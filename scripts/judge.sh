# shellcheck shell=bash
# shellcheck disable=SC2154 # set by scripts/vm, which sources this file
# judge.sh - turn a guest console log into results.  Sourced by scripts/vm;
# needs console, results, run, mode, topology, timeout_s, qemu_log,
# poweroff_hung and POWEROFF_GRACE.
#
# The guest prints "P2PMEM-RESULT: PASS|FAIL|SKIP <case> [reason]" lines
# and "P2PMEM-DONE" before powering off.  The judge adds vm-completed
# (P2PMEM-DONE seen, the guest powered off in time), guest-log-clean (no
# kernel splat but those tests/known-splats lists, each a known-splat/<name>
# skip), in test mode suite-complete (the suite reached its last case), in
# bench mode bench-complete, in reach mode reach-complete.

# Kernel splats: any of these in the guest console fails guest-log-clean.
SPLAT_RE='BUG:|WARNING:|KASAN:|UBSAN:|ODEBUG:|\bOops\b|general protection fault|possible circular locking|inconsistent lock state|INFO: task .* blocked|kmemleak:.*(unreferenced|suspected memory leak)|unreferenced object 0x|Call Trace:'

# cut_known_splats OUT: the console log without the kernel reports that
# tests/known-splats lists (mainline code outside the series); one line
# "name|reason" per report cut goes to OUT.  A report that names p2pmem or
# p2pdma code is never cut.
cut_known_splats() {
	tr -d '\r' <"$console" | awk -v out="$1" -v KNOWN="$P2PMEM_ROOT/tests/known-splats" '
	BEGIN {
		while ((getline line < KNOWN) > 0) {
			if (line ~ /^#/ || line == "")
				continue
			n++
			nf[n] = split(line, f, "|")
			for (i = 1; i <= nf[n]; i++)
				pat[n, i] = f[i]
		}
	}
	function flush(   k, i, j, ok, hit) {
		for (k = 1; k <= n && !ours; k++) {
			ok = 1
			for (i = 3; i <= nf[k] && ok; i++) {
				hit = 0
				for (j = 1; j <= nb && !hit; j++)
					hit = index(buf[j], pat[k, i]) || buf[j] ~ pat[k, i]
				ok = hit
			}
			if (ok) {
				print pat[k, 1] "|" pat[k, 2] >> out
				nb = 0
				return
			}
		}
		for (j = 1; j <= nb; j++)
			print buf[j]
		nb = 0
	}
	/\] (=====+|-+\[ cut here \]-+)$/ && !inrep { inrep = 1; ours = 0; nb = 0 }
	inrep {
		buf[++nb] = $0
		if ($0 ~ /p2pmem|p2pdma/)
			ours = 1
		if ($0 ~ /<\/TASK>|---\[ end trace/ || nb > 400) {
			inrep = 0
			flush()
		}
		next
	}
	{ print }
	END { if (inrep) flush() }'
}

# judge QEMU-STATUS: read $console, show and write the cases to $results;
# false if one failed.  QEMU-STATUS 124: QEMU was killed at the timeout.
judge() {
	local qrc=$1 line verdict name reason splats known
	: >"$results"
	while IFS= read -r line; do
		read -r verdict name reason <<<"${line#*P2PMEM-RESULT:}"
		case $verdict in
		PASS | FAIL | SKIP)
			[[ $verdict != PASS && -z $reason ]] && reason="(no reason given)"
			if [[ -n $name ]]; then
				result "$results" "$verdict" "$name" "$reason"
			else
				result "$results" FAIL guest-protocol "result line without a case name: $line"
			fi ;;
		*) result "$results" FAIL guest-protocol "malformed result line: $line" ;;
		esac
	done < <(tr -d '\r' <"$console" | grep -a 'P2PMEM-RESULT:' || true)

	# The test suite ends with the no-leak case: without it, it stopped
	# early, however well the cases before it went.
	if [[ $mode == test ]] && ! grep -q $'^[A-Z]*\tno-leak\t' "$results"; then
		result "$results" FAIL suite-complete "the guest suite did not get to its last case (no-leak): see $console"
	fi
	if [[ $mode == bench ]] && ! grep -q $'^[A-Z]*\tbench-complete\t' "$results"; then
		result "$results" FAIL bench-complete "the benchmark did not finish (no bench-complete line): see $console"
	fi
	if [[ $mode == reach ]] && ! grep -q $'^[A-Z]*\treach-'"$topology"$'\t' "$results"; then
		result "$results" FAIL reach-complete "the guest did not get to its verdict (reach-$topology): see $console"
	fi

	if [[ -n $poweroff_hung ]]; then
		result "$results" FAIL vm-completed "the guest did not power off within ${POWEROFF_GRACE}s of P2PMEM-DONE (stuck in the kernel? see $console); QEMU killed"
	elif grep -aq 'P2PMEM-DONE' "$console"; then
		result "$results" PASS vm-completed
	elif ((qrc == 124)); then
		result "$results" FAIL vm-completed "VM hung: no P2PMEM-DONE within ${timeout_s}s, QEMU killed (console: $console)"
	elif ((qrc != 0)); then
		result "$results" FAIL vm-completed "QEMU exited with status $qrc before P2PMEM-DONE (see $console and $qemu_log)"
	else
		result "$results" FAIL vm-completed "the VM stopped before P2PMEM-DONE (kernel panic or /init exited? see $console)"
	fi

	known=$(mktemp)
	splats=$(cut_known_splats "$known" | grep -anE "$SPLAT_RE" | grep -av 'P2PMEM-RESULT:' || true)
	while IFS='|' read -r name reason; do
		result "$results" SKIP "known-splat/$name" "$reason (report cut from the log, see tests/known-splats)"
	done <"$known"
	rm -f "$known"
	if [[ -z $splats ]]; then
		result "$results" PASS guest-log-clean
	else
		result "$results" FAIL guest-log-clean "kernel splat in $console:"
		printf '%s\n' "$splats" | head -n 20 | sed 's/^/         /'
	fi
	summary "$results" "$run"
}

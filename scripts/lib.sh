# shellcheck shell=bash
# Shared helpers for the p2pmem_pci scripts: paths, messages, progress,
# the build lock and the kernel tree checks. Sourced by the scripts in
# scripts/, never run on its own.

P2PMEM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROG=${0##*/}

P2PMEM_CACHE=${P2PMEM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/p2pmem-pci}
LOG_DIR=$P2PMEM_CACHE/logs
BRANCH=${BRANCH:-p2pmem-pci}
# UPSTREAM: the release that base/ (the PCI tree's queued commits) goes
# onto; BASE: the result, which the series is applied to (scripts/prepare-base).
if [[ -n ${KSRC:-} ]]; then
	KTREE=$KSRC
	UPSTREAM=${UPSTREAM:-v7.3}
else
	KTREE=$P2PMEM_CACHE/linux
	UPSTREAM=${UPSTREAM:-p2pmem-v7.3}
fi
BASE=${BASE:-p2pmem-base}
export P2PMEM_CACHE BRANCH BASE UPSTREAM
# shellcheck source=../tests/guest/wait.sh
. "$P2PMEM_ROOT/tests/guest/wait.sh"

msg() { printf '%s\n' "$*"; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}

# fmt_secs SECONDS -> "7m35s" / "42s" / "1h02m03s"
fmt_secs() {
	local s=$1
	if ((s >= 3600)); then
		printf '%dh%02dm%02ds' $((s / 3600)) $((s % 3600 / 60)) $((s % 60))
	elif ((s >= 60)); then
		printf '%dm%02ds' $((s / 60)) $((s % 60))
	else
		printf '%ds' "$s"
	fi
}

# log_path NAME -> path of log file NAME under $LOG_DIR (left as it is)
log_path() {
	mkdir -p "$LOG_DIR"
	printf '%s/%s.log' "$LOG_DIR" "$1"
}

# log_file NAME -> path of log file NAME, emptied for a new run
log_file() {
	log_path "$1"
	: >"$LOG_DIR/$1.log"
}

# show_log_tail LOG: the last 40 lines of a log, for a failed step.
show_log_tail() {
	printf -- '--- last 40 lines of %s ---\n' "$1" >&2
	tail -n 40 "$1" | tr -d '\r' >&2
	printf -- '--- end of %s ---\n' "$1" >&2
}

# Results: every script that judges writes its cases to a results file, one
# "VERDICT<TAB>name<TAB>reason" line each (VERDICT: PASS, FAIL or SKIP);
# scripts/test gathers them (import_results) and counts them (summary).

# show_result VERDICT NAME [REASON]: one case, as people read it
show_result() {
	case $1 in
	PASS) printf 'ok     %s\n' "$2" ;;
	SKIP) printf 'skip   %s: %s\n' "$2" "${3:-}" ;;
	*) printf 'FAIL   %s: %s\n' "$2" "${3:-(no reason given)}" ;;
	esac
}

# result FILE VERDICT NAME [REASON]: show a case and append it to FILE
result() {
	local file=$1
	shift
	show_result "$@"
	printf '%s\t%s\t%s\n' "$1" "$2" "${3:-}" >>"$file"
}

# show_results FILE: every case of FILE, as people read them
show_results() {
	local verdict name reason
	while IFS=$'\t' read -r verdict name reason; do
		show_result "$verdict" "$name" "$reason"
	done <"$1"
}

# run_name VARIANT MODE [TOPOLOGY]: what scripts/vm calls a run, and its
# console, results and agent log files: VARIANT-MODE, plus -TOPOLOGY for
# a topology other than switch
run_name() {
	if [[ ${3:-switch} == switch ]]; then
		printf '%s-%s\n' "$1" "$2"
	else
		printf '%s-%s-%s\n' "$1" "$2" "$3"
	fi
}

# import_results FILE PREFIX OUT: append the cases of FILE to OUT, each
# named PREFIX/<name>; false if FILE does not exist
import_results() {
	[[ -f $1 ]] || return 1
	awk -F'\t' -v OFS='\t' -v p="$2" '{ $2 = p "/" $2; print }' "$1" >>"$3"
}

# summary FILE [WHAT]: "[WHAT: ]N passed, N failed[, N skipped]" of the
# cases in FILE; false if one failed
summary() {
	local pass fail skip line
	pass=$(grep -c '^PASS' "$1" || true)
	fail=$(grep -c '^FAIL' "$1" || true)
	skip=$(grep -c '^SKIP' "$1" || true)
	line="$pass passed, $fail failed"
	((skip == 0)) || line+=", $skip skipped"
	msg "${2:+$2: }$line"
	((fail == 0))
}

# run_progress LOG CMD...: run CMD with all output appended to LOG, print
# "... 1m30s" every PROGRESS_EVERY seconds (default 30) while it runs.
# Returns CMD's exit status; prints nothing else.
run_progress() {
	local log=$1 pid rc=0 start next now
	shift
	start=$SECONDS
	next=$((start + ${PROGRESS_EVERY:-30}))
	"$@" >>"$log" 2>&1 </dev/null &
	pid=$!
	# A TERM to us (timeout, CI) must not leave the child running.
	trap 'kill "$pid" 2>/dev/null; exit 143' TERM
	trap 'kill "$pid" 2>/dev/null; exit 130' INT
	while kill -0 "$pid" 2>/dev/null; do
		sleep 1
		now=$SECONDS
		if ((now >= next)); then
			msg "    ... $(fmt_secs $((now - start)))"
			next=$((now + ${PROGRESS_EVERY:-30}))
		fi
	done
	wait "$pid" || rc=$?
	trap - TERM INT
	return "$rc"
}

# run_step "WHAT" LOG CMD...: say what is happening and where the log is,
# run CMD with progress, then "done in 7m35s"; on failure show the log tail
# and return CMD's status.
run_step() {
	local what=$1 log=$2 start rc=0
	shift 2
	start=$SECONDS
	msg "$what (log: $log)"
	run_progress "$log" "$@" || rc=$?
	if ((rc != 0)); then
		msg "    failed after $(fmt_secs $((SECONDS - start))) (exit $rc)"
		show_log_tail "$log"
		return "$rc"
	fi
	msg "    done in $(fmt_secs $((SECONDS - start)))"
}

# take_build_lock: serialise kernel builds (and changes to the kernel tree)
# on $P2PMEM_BUILD_LOCK (default $P2PMEM_CACHE/build.lock), for this process
# and everything it starts.
take_build_lock() {
	[[ -n ${P2PMEM_BUILD_LOCK_HELD:-} ]] && return 0
	local lock=${P2PMEM_BUILD_LOCK:-$P2PMEM_CACHE/build.lock}
	mkdir -p "$P2PMEM_CACHE" "$(dirname "$lock")"
	exec 9>>"$lock"
	if ! flock -n 9; then
		msg "waiting for another kernel build to finish (lock: $lock)"
		flock 9
	fi
	export P2PMEM_BUILD_LOCK_HELD=$$
}

# kmake OUT ARGS...: make in the kernel tree (KMAKE_TREE if set) with
# output in OUT, with ccache (CCACHE_DIR set by the caller) and one job per
# CPU.  KMAKE_TOOLCHAIN picks the compiler: gcc (default, the host's),
# clang (LLVM 19: v7.3 needs clang >= 17) or arm64 (Debian's cross gcc).
kmake() {
	local tc
	case ${KMAKE_TOOLCHAIN:-gcc} in
	gcc) tc=(CC="ccache gcc") ;;
	clang) tc=(LLVM=-19 CC="ccache clang-19") ;;
	arm64) tc=(ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- CC="ccache aarch64-linux-gnu-gcc") ;;
	*) die "unknown KMAKE_TOOLCHAIN '$KMAKE_TOOLCHAIN'" ;;
	esac
	make -C "${KMAKE_TREE:-$KTREE}" O="$1" "${tc[@]}" -j"$(nproc)" "${@:2}"
}

# make_kconfig OUT FRAGMENT...: OUT/.config = tinyconfig (or the target
# KCONFIG_START names, e.g. defconfig) with the fragments merged by the
# kernel's merge_config.sh, completed by olddefconfig.
make_kconfig() {
	local out=$1
	shift
	kmake "$out" "${KCONFIG_START:-tinyconfig}" &&
		(cd "$KTREE" && scripts/kconfig/merge_config.sh -m -O "$out" "$out/.config" "$@") &&
		kmake "$out" olddefconfig
}

# check_config OUT FRAGMENT...: every CONFIG_ value of the fragments (the
# last one wins, as in merge_config.sh) stuck in OUT/.config; lists each one
# that did not on stderr.
check_config() {
	local out=$1 frag line name got where bad=0
	local -A wanted=() source=()
	local -a order=()
	shift
	for frag in "$@"; do
		while IFS= read -r line || [[ -n $line ]]; do
			if [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
				name=${BASH_REMATCH[1]}
				[[ -v wanted[$name] ]] || order+=("$name")
				wanted[$name]=${BASH_REMATCH[2]} source[$name]=${frag##*/}
			elif [[ $line =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
				name=${BASH_REMATCH[1]}
				[[ -v wanted[$name] ]] || order+=("$name")
				wanted[$name]=n source[$name]=${frag##*/}
			fi
		done <"$frag"
	done
	for name in "${order[@]}"; do
		got=$(sed -n "s/^$name=//p" "$out/.config")
		[[ -n $got ]] || got=n
		[[ $got == "${wanted[$name]}" ]] && continue
		((bad)) || msg "these config values did not stick in $out/.config:" >&2
		bad=1
		where=$(kgit grep -n -E "^(menu)?config ${name#CONFIG_}\$" -- '*Kconfig*' | head -n 1 | cut -d: -f1,2)
		if [[ -z $where ]]; then
			msg "  $name: wanted ${wanted[$name]}, got $got (${source[$name]}): no such option in this tree (is the series applied?)" >&2
		elif [[ $got == n ]]; then
			msg "  $name: wanted ${wanted[$name]}, got $got (${source[$name]}): a dependency is missing, see 'depends on' at $where" >&2
		else
			msg "  $name: wanted ${wanted[$name]}, got $got (${source[$name]}): selected by another option, or its type or range does not allow it, see $where" >&2
		fi
	done
	return "$bad"
}

# seed_from_m OUT: a build directory without a config starts as a copy of
# the finished =m build, so that make rebuilds only what differs (a few
# objects and the link instead of the whole kernel).
seed_from_m() {
	local out=$1 m=$P2PMEM_CACHE/build/m
	[[ ! -f $out/.config && -f $m/.p2pmem-stamp && $out != "$m" ]] || return 0
	msg "starting $out as a copy of the =m build"
	rm -rf "$out"
	cp -a "$m" "$out"
	rm -f "$out/.p2pmem-stamp" "$out/.p2pmem-config" "$out/.p2pmem-variant.config"
}

# kgit ARGS...: git in the kernel tree.
kgit() { git -C "$KTREE" "$@"; }

# Throwaway branch of the kernel tree for builds of other trees than the series
SCRATCH_BRANCH=p2pmem-scratch

# restore_tree: the kernel tree back on $BRANCH, the scratch branch gone.
# Callers that use build_kernel_at set it as their EXIT trap.
restore_tree() {
	kgit checkout -q -f "$BRANCH" 2>/dev/null ||
		warn "could not check out $BRANCH again in $KTREE: run git -C $KTREE checkout -f $BRANCH"
	kgit branch -q -D "$SCRATCH_BRANCH" 2>/dev/null || true
}

# build_kernel_at NAME WHAT REF [PATCH]: build the =m kernel of commit REF,
# with PATCH applied if given, in $P2PMEM_CACHE/build/NAME, from a copy of
# build/m (so make rebuilds only what differs).  REF is checked out on
# $SCRATCH_BRANCH; the tree is back on $BRANCH afterwards.  WHAT says in
# messages what is built.  Needs the build lock and a clean kernel tree.
build_kernel_at() {
	local name=$1 what=$2 ref=$3 patch=${4:-} out=$P2PMEM_CACHE/build/$1 log
	log=$(log_file "build-$name")
	kgit checkout -q -B "$SCRATCH_BRANCH" "$ref" ||
		die "cannot check out $ref in $KTREE (uncommitted changes?): see git -C $KTREE status"
	if [[ -n $patch ]]; then
		kgit apply "$patch" 2>>"$log" ||
			die "$patch no longer applies (see $log): make it again with git diff on the changed file"
	fi
	rm -rf "$out"
	seed_from_m "$out"
	CCACHE_DIR=${CCACHE_DIR:-$P2PMEM_CACHE/ccache} run_step "building kernel $name: $what (incremental, from build/m)" \
		"$log" kmake "$out" olddefconfig bzImage modules ||
		die "the kernel $name ($what) does not build (see $log)"
	restore_tree
}

# require_tree: the kernel tree exists and is a git work tree with a Linux
# Makefile.
require_tree() {
	local hint="run scripts/prepare-base first"
	[[ -n ${KSRC:-} ]] && hint="KSRC must name a Linux kernel git work tree"
	[[ -d $KTREE ]] || die "kernel tree $KTREE does not exist: $hint"
	[[ $(kgit rev-parse --is-inside-work-tree 2>/dev/null) == true ]] ||
		die "$KTREE is not a git work tree: $hint"
	if [[ ! -f $KTREE/scripts/kconfig/merge_config.sh ]] ||
		! grep -q '^PATCHLEVEL = ' "$KTREE/Makefile" 2>/dev/null; then
		die "$KTREE does not look like a Linux source tree (no top-level kernel Makefile): $hint"
	fi
}

# require_ktree: require_tree, and BASE resolves.  Sets BASE_COMMIT.
require_ktree() {
	require_tree
	BASE_COMMIT=$(kgit rev-parse --verify -q "$BASE^{commit}") ||
		die "BASE=$BASE does not name a commit in $KTREE: run scripts/prepare-base (it makes $BASE), or set BASE=<tag or commit> of your own base"
}

# base_has_history: true if UPSTREAM (or, without it, BASE) has mainline
# history, false for the single commit made from Debian's tarball.
base_has_history() {
	local c
	c=$(kgit rev-parse --verify -q "$UPSTREAM^{commit}" 2>/dev/null) || c=$BASE_COMMIT
	[[ $(kgit rev-list --count --max-count=2 "$c") != 1 ]]
}

# tree_dirty: true if tracked files in the kernel tree have uncommitted changes.
tree_dirty() {
	[[ -n $(kgit status --porcelain --untracked-files=no) ]]
}

# series_files [SERIES DIR]: the patch files listed in SERIES (default:
# the series file, patches in patches/), in order, as absolute paths; dies
# if one is missing.
series_files() {
	local series=${1:-$P2PMEM_ROOT/series} dir=${2:-$P2PMEM_ROOT/patches} line file
	[[ -f $series ]] || return 0
	while IFS= read -r line || [[ -n $line ]]; do
		line=${line%%#*}
		line=${line//[[:space:]]/}
		[[ -z $line ]] && continue
		file=$dir/$line
		[[ -f $file ]] || die "${series#"$P2PMEM_ROOT"/} lists $line but ${dir#"$P2PMEM_ROOT"/}/$line does not exist"
		printf '%s\n' "$file"
	done <"$series"
}

# submissions: one line "NAME ONTO FILE..." per "# submission: NAME onto
# ONTO" block of series, the files as absolute paths.  ONTO is upstream
# (UPSTREAM, plain v7.3), base (BASE) or the NAME of an earlier submission.
submissions() {
	local line name='' onto='' files=() seen=' ' series=$P2PMEM_ROOT/series
	local fix="edit the '# submission: NAME onto upstream|base|EARLIER-NAME' lines of series"
	while IFS= read -r line || [[ -n $line ]]; do
		if [[ $line =~ ^#\ submission:\ ([a-z][a-z0-9-]*)\ onto\ ([a-z][a-z0-9-]*)$ ]]; then
			[[ -z $name ]] || printf '%s %s %s\n' "$name" "$onto" "${files[*]}"
			name=${BASH_REMATCH[1]} onto=${BASH_REMATCH[2]} files=()
			[[ $seen != *" $name "* ]] || die "series names submission '$name' twice: $fix"
			[[ $onto == upstream || $onto == base || $seen == *" $onto "* ]] ||
				die "submission '$name' goes onto '$onto', which is not upstream, base or an earlier submission: $fix"
			seen+="$name "
		elif [[ $line == '# submission:'* ]]; then
			die "series: '$line' is not of the form '# submission: NAME onto ONTO': $fix"
		else
			line=${line%%#*}
			line=${line//[[:space:]]/}
			[[ -z $line ]] && continue
			[[ -n $name ]] || die "series lists $line before any submission: $fix"
			[[ -f $P2PMEM_ROOT/patches/$line ]] || die "series lists $line but patches/$line does not exist"
			files+=("$P2PMEM_ROOT/patches/$line")
		fi
	done <"$series"
	[[ -z $name ]] || printf '%s %s %s\n' "$name" "$onto" "${files[*]}"
}

# base_files: the upstream commits of base/ (base/series), in order.
base_files() { series_files "$P2PMEM_ROOT/base/series" "$P2PMEM_ROOT/base"; }

# The key of a patch or commit: "<patch-id>:<hash of message and author>",
# so a changed commit message counts as a change too.
key_of() { # PATCH-ID MESSAGE AUTHOR
	printf '%s:%s\n' "$1" "$(printf '%s\n%s\n' "$2" "$3" | git stripspace | sha1sum | cut -c1-16)"
}

# patch_keys FILE...: the key of each patch file, in order (as git am would
# make the commit: mailinfo's subject, body and author).
patch_keys() {
	local f tmp info pid subject author msg
	tmp=$(mktemp -d)
	for f in "$@"; do
		pid=$(git patch-id --stable <"$f" | cut -d' ' -f1)
		[[ -n $pid ]] || { rm -rf "$tmp"; die "patches/${f##*/} contains no diff: is it a git format-patch file?"; }
		info=$(git mailinfo "$tmp/msg" "$tmp/patch" <"$f")
		subject=$(sed -n 's/^Subject: //p' <<<"$info")
		author="$(sed -n 's/^Author: //p' <<<"$info") <$(sed -n 's/^Email: //p' <<<"$info")>"
		msg=$(printf '%s\n\n' "$subject"; cat "$tmp/msg")
		key_of "$pid" "$(git stripspace <<<"$msg")" "$author"
	done
	rm -rf "$tmp"
}

# branch_keys: the key of each commit of BASE..BRANCH, oldest first.
branch_keys() { range_keys "$BASE_COMMIT" "refs/heads/$BRANCH"; }

# range_keys FROM TO: the key of each commit of FROM..TO, oldest first.
range_keys() {
	local c pid
	for c in $(kgit rev-list --reverse "$1..$2"); do
		pid=$(kgit show --no-color --no-ext-diff --format='commit %H' "$c" | git patch-id --stable | cut -d' ' -f1)
		key_of "${pid:-empty}" "$(kgit log -1 --format=%B "$c" | git stripspace)" "$(kgit log -1 --format='%an <%ae>' "$c")"
	done
}

# series_hash: a hash of the patches that series lists, in order.
series_hash() {
	local files
	mapfile -t files < <(series_files)
	{ ((${#files[@]} == 0)) || cat "${files[@]}"; } | sha256sum | cut -d' ' -f1
}

# applied_file: where scripts/apply and scripts/export record the
# series_hash that BRANCH was last made from or exported to, and the
# branch's commit then ("HASH TIP").
applied_file() {
	printf '%s/p2pmem-series-%s' "$(kgit rev-parse --absolute-git-dir)" "${BRANCH//\//_}"
}

# record_applied: BRANCH and patches/ are the same now.
record_applied() {
	printf '%s %s\n' "$(series_hash)" "$(kgit rev-parse "refs/heads/$BRANCH")" >"$(applied_file)"
}

# applied_field N: field N (1 HASH, 2 TIP) of what record_applied wrote.
applied_field() {
	awk -v n="$1" '{ print $n }' "$(applied_file)" 2>/dev/null || true
}

# patch_paths FILE...: every path the patch files touch, once each.
patch_paths() {
	awk '/^diff --git / { print substr($3, 3); print substr($4, 3) }' "$@" | sort -u
}

# am_onto COMMIT FILE...: git am -3 the patch files onto COMMIT in a
# throwaway worktree that checks out only the paths they touch (seconds,
# not a 1.5 GB checkout; the kernel tree's own checkout is not touched).
# Prints the resulting commit; on failure prints git am's output to stderr
# and returns non-zero.  Commit dates are the author dates; the committer
# is p2pmem-am unless GIT_COMMITTER_NAME/EMAIL say otherwise; no hooks, no
# signing: the same patches on the same commit give the same commit ids.
# The commit stays reachable from no ref: use it before the next git gc.
am_onto() {
	local base=$1 wt rc=0 tip paths
	shift
	mapfile -t paths < <(patch_paths "$@" | sed 's|^|/|')
	wt=$(mktemp -d "${TMPDIR:-/tmp}/p2pmem-am.XXXXXX")
	kgit worktree add -q --no-checkout --detach "$wt" "$base" || { rm -rf "$wt"; return 1; }
	{
		git -C "$wt" sparse-checkout set --no-cone "${paths[@]}" &&
			git -C "$wt" read-tree -mu HEAD &&
			git -C "$wt" -c user.name=p2pmem-am -c user.email=p2pmem-am@localhost \
				-c core.hooksPath=/dev/null am -q -3 --committer-date-is-author-date \
				--no-message-id --no-scissors --no-gpg-sign "$@" &&
			tip=$(git -C "$wt" rev-parse HEAD)
	} >&2 || rc=$?
	kgit worktree remove --force "$wt" >/dev/null 2>&1 || rm -rf "$wt"
	kgit worktree prune
	((rc == 0)) && printf '%s\n' "$tip"
	return "$rc"
}

# debian_uri: the Debian archive URI the machine already uses.
debian_uri() {
	local uri=
	if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
		uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' \
			/etc/apt/sources.list.d/debian.sources)
	fi
	if [[ -z $uri && -f /etc/apt/sources.list ]]; then
		uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { if ($i !~ /security/) { print $i; exit } else break } }' \
			/etc/apt/sources.list)
	fi
	printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

# private_apt DIR TYPE SUITE: apt state of its own in DIR, with one source
# line "TYPE <the machine's Debian URI> SUITE main" (TYPE deb or deb-src),
# so that packages of another suite can be fetched without touching the
# machine's apt configuration.  Sets APT_OPTS, the apt-get options to use.
private_apt() {
	local dir=$1 type=$2 suite=$3 keyring=/usr/share/keyrings/debian-archive-keyring.gpg opt=''
	mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
	[[ -f $keyring ]] && opt="[signed-by=$keyring] "
	printf '%s %s%s %s main\n' "$type" "$opt" "$(debian_uri)" "$suite" >"$dir/sources.list"
	# shellcheck disable=SC2034 # for the caller
	APT_OPTS=(
		-o "Dir::Etc::SourceList=$dir/sources.list" -o Dir::Etc::SourceParts=-
		-o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache"
		-o APT::Sandbox::User=root -q
	)
}

# require_series_branch FILE...: BRANCH exists and holds exactly the
# series' patch FILEs (as scripts/apply makes it, scripts/export keeps it).
require_series_branch() {
	kgit rev-parse -q --verify "refs/heads/$BRANCH" >/dev/null ||
		die "the kernel tree $KTREE has no branch $BRANCH: run scripts/apply first"
	[[ "$(patch_keys "$@")" == "$(branch_keys)" ]] ||
		die "branch $BRANCH differs from patches/: run scripts/export (keep the branch) or scripts/apply (keep patches/) first"
}

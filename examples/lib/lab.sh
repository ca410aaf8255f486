# Shared by the lab scripts: print each command as the lesson shows it, run it, check it.
# DOCKYARD names the command (default: dockyard on PATH); DOCKYARD_ROOT, DOCKYARD_RUNTIME and
# the rest of dockyard's environment pass through.
# A path, not a name: the function `dockyard` below would otherwise call itself.
DOCKYARD=${DOCKYARD:-$(command -v dockyard || true)}
[ -n "$DOCKYARD" ] || { echo "lab: dockyard is not on PATH (make install), nor set in DOCKYARD" >&2; exit 1; }

# shown ARGS...: the words quoted only where a shell needs it, as a reader would type them.
shown() {
	local out="" word
	for word in "$@"; do
		if [[ $word =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then out+=" $word"; else out+=" $(printf '%q' "$word")"; fi
	done
	printf '%s' "${out# }"
}
bold() { if [ -t 1 ]; then printf '\033[1m%s\033[0m\n' "$*"; else printf '%s\n' "$*"; fi; }
title() { echo; bold "## $*"; }
fail() { echo "lab failed: $*" >&2; exit 1; }

# dockyard ARGS...: show the command with "dockyard" as the reader types it, then run it.
dockyard() {
	bold "\$ dockyard $(shown "$@")"
	"$DOCKYARD" "$@" || fail "dockyard $* exited $?"
}

# quiet ARGS...: a dockyard command whose output the script uses or does not need.
quiet() { "$DOCKYARD" "$@"; }

# show_curl URL: curl as the lesson runs it; prints the body.
show_curl() {
	bold "\$ curl $1"
	curl -sS --max-time 10 "$1" || fail "curl $1"
	echo
}

# wait_for WHAT SECONDS COMMAND...: retry COMMAND (quietly) until it succeeds.
wait_for() {
	local what=$1 seconds=$2 i
	shift 2
	for ((i = 0; i < seconds * 10; i++)); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.1
	done
	fail "$what did not come up within ${seconds}s"
}

# expect TEXT DESCRIPTION: stdin (shown as it is) must contain TEXT.
expect() {
	local out
	out=$(cat)
	printf '%s\n' "$out"
	grep -qF -- "$1" <<<"$out" || fail "$2: expected '$1' in: ${out:0:400}"
	echo "ok: $2"
}

# need_image NAME: the lab's images come from `make images`.
need_image() {
	quiet image inspect "$1" >/dev/null 2>&1 || fail "no image $1 here: run 'make images' first"
}

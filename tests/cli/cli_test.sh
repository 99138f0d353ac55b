#!/bin/bash
# Assertions for the mycelium-codegen command-line tests (tests/cli).
#
#   cli_test.sh expect RC [--has TEXT]... [--lacks TEXT]... -- COMMAND [ARG]...
#       runs COMMAND; passes if it exits with RC and its output (stdout and
#       stderr together) contains every --has TEXT and no --lacks TEXT
#       (fixed strings, matched within one line).
#   cli_test.sh same-digest CODEGEN A.toml B.toml
#       passes if `CODEGEN digest` prints exactly the same for A and B.
#   cli_test.sh changed-digest CODEGEN A.toml B.toml MESSAGE [UNCHANGED]...
#       passes if the schema digest and the digest of MESSAGE differ between
#       A and B while the digests of the UNCHANGED messages stay equal.
set -u

fail() {
  echo "FAIL: $*"
  exit 1
}

show() { # label, rc, output
  echo "--- $1 (exit code $2) ---"
  printf '%s\n' "$3"
  echo "---"
}

digest_of() { # codegen, file -> prints digest output or fails
  local out rc
  out=$("$1" digest "$2" 2>&1)
  rc=$?
  if [ $rc -ne 0 ]; then
    show "$1 digest $2" $rc "$out"
    fail "'digest $2' exited with $rc, expected 0"
  fi
  printf '%s\n' "$out"
}

line_of() { # output, "schema" | message name -> the digest on that line
  if [ "$2" = schema ]; then
    printf '%s\n' "$1" | awk '$1 == "schema" { print $3 }'
  else
    printf '%s\n' "$1" | awk -v m="$2" '$1 == "message" && $3 == m { print $4 }'
  fi
}

mode=${1:-}
shift || true
case "$mode" in
  expect)
    want_rc=$1
    shift
    has=()
    lacks=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do
      case "$1" in
        --has) has+=("$2"); shift 2 ;;
        --lacks) lacks+=("$2"); shift 2 ;;
        *) fail "cli_test.sh: unknown option '$1'" ;;
      esac
    done
    [ "${1:-}" = "--" ] || fail "cli_test.sh expect: missing '-- COMMAND'"
    shift
    out=$("$@" 2>&1)
    rc=$?
    show "$*" $rc "$out"
    [ "$rc" -eq "$want_rc" ] || fail "exit code $rc, expected $want_rc"
    for t in "${has[@]+"${has[@]}"}"; do
      printf '%s\n' "$out" | grep -qF -- "$t" || fail "output lacks: $t"
    done
    for t in "${lacks[@]+"${lacks[@]}"}"; do
      printf '%s\n' "$out" | grep -qF -- "$t" && fail "output must not contain: $t"
    done
    echo "PASS"
    ;;
  same-digest)
    a=$(digest_of "$1" "$2") || { printf '%s\n' "$a"; exit 1; }
    b=$(digest_of "$1" "$3") || { printf '%s\n' "$b"; exit 1; }
    show "digest $2" 0 "$a"
    show "digest $3" 0 "$b"
    [ -n "$(line_of "$a" schema)" ] || fail "no 'schema <package> <digest>' line"
    [ "$a" = "$b" ] || fail "digests differ, expected them equal"
    echo "PASS"
    ;;
  changed-digest)
    codegen=$1 fa=$2 fb=$3 changed=$4
    shift 4
    a=$(digest_of "$codegen" "$fa") || { printf '%s\n' "$a"; exit 1; }
    b=$(digest_of "$codegen" "$fb") || { printf '%s\n' "$b"; exit 1; }
    show "digest $fa" 0 "$a"
    show "digest $fb" 0 "$b"
    for what in schema "$changed" "$@"; do
      [ -n "$(line_of "$a" "$what")" ] && [ -n "$(line_of "$b" "$what")" ] \
        || fail "no digest line for '$what' in both outputs"
    done
    [ "$(line_of "$a" schema)" != "$(line_of "$b" schema)" ] \
      || fail "schema digest unchanged, expected a different digest"
    [ "$(line_of "$a" "$changed")" != "$(line_of "$b" "$changed")" ] \
      || fail "digest of message '$changed' unchanged"
    for m in "$@"; do
      [ "$(line_of "$a" "$m")" = "$(line_of "$b" "$m")" ] \
        || fail "digest of untouched message '$m' changed"
    done
    echo "PASS"
    ;;
  *)
    fail "usage: cli_test.sh expect|same-digest|changed-digest ..."
    ;;
esac

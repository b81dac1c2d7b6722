#!/bin/sh
# Quick pass (unit, api, OpenAPI drift) on every other supported Python found on this machine.
# Usage: scripts/other-pythons.sh [VERSION...]   (default: 3.11 3.12 3.13 minus the default venv's)
# Each version gets its own virtualenv .venv-3.X (created once, reinstalled when pyproject.toml
# changes). A version that is not installed is skipped with a message; a failing pass exits non-zero.
set -u
cd "$(dirname "$0")/.."
DEFAULT=$(.venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo none)
VERSIONS=${*:-3.11 3.12 3.13}
STAMP=$(cksum < pyproject.toml | cut -d' ' -f1)
QUICK="tests/unit tests/api"
status=0

find_python() {  # $1 = 3.X; prints an interpreter of exactly that version, or nothing
  for cand in "python$1" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$1".*/bin/python"$1" \
              /usr/bin/python"$1" /usr/local/bin/python"$1"; do
    if "$cand" -c "import sys; sys.exit(0 if '%d.%d' % sys.version_info[:2] == '$1' else 1)" \
         >/dev/null 2>&1; then
      echo "$cand"; return 0
    fi
  done
  return 1
}

for v in $VERSIONS; do
  if [ "$v" = "$DEFAULT" ]; then
    continue  # the full suite already ran on it
  fi
  py=$(find_python "$v") || { echo "python $v: not installed here, skipped (install it, e.g. pyenv install $v)"; continue; }
  venv=".venv-$v"
  if [ ! -f "$venv/.installed-$STAMP" ]; then
    echo "python $v: preparing $venv with $py"
    log="$venv.install.log"
    { [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"; } \
      && "$venv/bin/pip" install -q --upgrade pip >"$log" 2>&1 \
      && "$venv/bin/pip" install -q -e '.[test]' >>"$log" 2>&1 \
      && rm -f "$venv"/.installed-* "$log" && touch "$venv/.installed-$STAMP" \
      || { echo "python $v: FAILED to install into $venv (see $log)"; status=1; continue; }
  fi
  echo "python $v: quick pass ($QUICK)"
  if ! "$venv/bin/python" -m pytest -q -x -p no:cacheprovider -m "not slow and not browser" $QUICK; then
    echo "python $v: FAILED"; status=1
  fi
done
exit $status

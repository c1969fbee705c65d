# Shared by the flavour scripts; ami.spec.setup_script puts it in front of each one.
# The venv belongs to the login user (not root), so a job's own `setup: pip install ...`
# works in it; only apt and the venv's parent folder need sudo.
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
login_user="$(id -un)"

# retry N CMD...: N tries with a growing pause, for what is transient (mirrors, apt's locks).
retry() {
  local n=$1 i=1
  shift
  until "$@"; do
    if [ "$i" -ge "$n" ]; then
      echo "orchestrate setup: failed after $n tries: $*" >&2
      return 1
    fi
    sleep $((i * 5))
    i=$((i + 1))
  done
}

# DPkg::Lock::Timeout waits on dpkg's locks (cloud-init and unattended-upgrades hold them on
# first boot); `apt-get update`'s lists lock is not covered by it, so update is retried.
apt_get() { $SUDO apt-get -o DPkg::Lock::Timeout=600 -o Acquire::Retries=3 -q "$@"; }
apt_install() {
  retry 6 apt_get update
  retry 3 apt_get install -y --no-install-recommends "$@"
}

# make_venv PYTHON VENV: create VENV as the login user (the classic path: needs the venv module).
make_venv() {
  $SUDO install -d -o "$login_user" -g "$(id -gn)" "$2"
  if [ ! -x "$2/bin/python" ]; then "$1" -m venv "$2"; fi
}

# fetch_uv DIR: uv's static binary, taken out of its wheel on PyPI with python3's own urllib and
# checked against the sha256 PyPI lists for it. Needs no pip, no venv module and no apt, which is
# what makes a cold setup fast (apt + `python3 -m venv` + `pip install uv` took 19 s of a 64 s
# setup on the instance emulator). Fails where PyPI's JSON API is not reachable (a private index).
fetch_uv() {
  # Fetched by an earlier stage (ours: owned by this user, not planted in /tmp by another).
  if [ -O "$1/uv" ] && [ -x "$1/uv" ] && "$1/uv" --version >/dev/null 2>&1; then return 0; fi
  python3 - "$1" <<'PY'
import hashlib, io, json, os, platform, sys, urllib.parse, urllib.request, zipfile

dest = sys.argv[1]
arch = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64"}[platform.machine().lower()]
url = os.environ.get("ORCHESTRATE_UV_JSON", "https://pypi.org/pypi/uv/json")
with urllib.request.urlopen(url, timeout=30) as resp:
    files = json.load(resp)["urls"]
wheel = next(
    f for f in files
    if f["filename"].endswith(".whl") and "manylinux" in f["filename"]
    and arch in f["filename"] and "musl" not in f["filename"]
)
with urllib.request.urlopen(urllib.parse.urljoin(url, wheel["url"]), timeout=120) as resp:
    data = resp.read()
if hashlib.sha256(data).hexdigest() != wheel["digests"]["sha256"]:
    sys.exit(f"{wheel['filename']}: sha256 does not match PyPI's")
with zipfile.ZipFile(io.BytesIO(data)) as zf:
    member = next(n for n in zf.namelist() if n.endswith(".data/scripts/uv"))
    os.makedirs(dest, exist_ok=True)
    with zf.open(member) as src, open(os.path.join(dest, "uv"), "wb") as out:
        out.write(src.read())
os.chmod(os.path.join(dest, "uv"), 0o755)
PY
}

# python_env PYTHON VENV REQUIREMENT...: the venv with its packages, owned by the login user.
# uv (ours: its own venv, parallel downloads) unless ORCHESTRATE_INSTALLER=pip or uv cannot be
# had; then the classic path: apt's venv module, `python3 -m venv`, pip (the benchmark's
# reference). UV_NATIVE_TLS: trust the system's CA store, as pip does.
# A staged setup (ami/stages.py) sets ORCHESTRATE_SETUP_ALL (every stage's requirements, one a
# line) and ORCHESTRATE_SETUP_LOCK: each stage installs pinned to one resolution of them all, so
# a later stage never moves a package an earlier one installed (a task may be running on it).
python_env() {
  local python_bin=$1 venv=$2 uv_dir=/tmp/orchestrate-uv
  local all=${ORCHESTRATE_SETUP_ALL:-} lock=${ORCHESTRATE_SETUP_LOCK:-}
  shift 2
  if [ "${ORCHESTRATE_INSTALLER:-uv}" != pip ] && retry 2 fetch_uv "$uv_dir"; then
    $SUDO install -d -o "$login_user" -g "$(id -gn)" "$venv"
    if [ ! -x "$venv/bin/python" ]; then
      "$uv_dir/uv" venv -q --seed --allow-existing --python "$python_bin" "$venv"
    fi
    local pins=()
    if [ -n "$all" ] && [ -n "$lock" ]; then
      if [ ! -s "$lock" ]; then
        printf '%s\n' "$all" > "$lock.in"
        UV_NATIVE_TLS=1 retry 3 "$uv_dir/uv" pip compile -q --python "$venv/bin/python" \
          "$lock.in" -o "$lock"
      fi
      pins=(-c "$lock")
    fi
    if UV_NATIVE_TLS=1 retry 3 "$uv_dir/uv" pip install -q --python "$venv/bin/python" \
      "${pins[@]}" "$@"; then
      cp "$uv_dir/uv" "$venv/bin/uv"  # for the jobs' own `setup:` too
      return 0
    fi
  fi
  # pip resolves only as it installs: a staged setup's first stage takes every package.
  if [ -n "$all" ]; then mapfile -t all_reqs <<< "$all" && set -- "${all_reqs[@]}"; fi
  apt_install "$python_bin" "$python_bin-venv"
  make_venv "$python_bin" "$venv"
  retry 3 "$venv/bin/python" -m pip install -q "$@"
}

# known_modules REQUIREMENT...: the trainers' modules these requirements provide, one a line
# (what a stage checks: a staged setup installs one framework at a time, see ami/stages.py).
known_modules() {
  local r name
  for r in "$@"; do
    name=$(printf '%s' "$r" | sed -E 's/[^A-Za-z0-9_.-].*//' | tr 'A-Z_' 'a-z-')
    case "$name" in
      tensorflow | tensorflow-cpu) echo tensorflow ;;
      pytensor | numba | threadpoolctl | jax) echo "$name" ;;
      scipy-openblas32) echo scipy_openblas32 ;;
    esac
  done
}

# check_imports VENV MODULE...: that each module is installed, without importing it (importing
# TensorFlow and PyTensor cold takes ~20 s, which the first task pays anyway); a full import
# when ORCHESTRATE_SETUP_IMPORT=1 (a bake: it warms PyTensor's compile cache into the image).
check_imports() {
  local venv=$1
  shift
  if [ "${ORCHESTRATE_SETUP_IMPORT:-0}" = 1 ]; then
    "$venv/bin/python" -c "import sys, importlib; [importlib.import_module(m) for m in sys.argv[1:]]" "$@"
  fi
  "$venv/bin/python" - "$@" <<'PY'
import importlib.metadata as md, importlib.util, sys

missing = [m for m in sys.argv[1:] if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"orchestrate setup: not importable after setup: {', '.join(missing)}")
dists = {d.metadata["Name"].lower(): d.version for d in md.distributions()}
wanted = {m.lower() for m in sys.argv[1:]}
found = sorted((n, v) for n, v in dists.items() if n.replace("_", "-").split("-")[0] in wanted)
print("setup ok:", ", ".join(f"{n} {v}" for n, v in found))
PY
}

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

# make_venv PYTHON VENV: create VENV as the login user.
make_venv() {
  $SUDO install -d -o "$login_user" -g "$(id -gn)" "$2"
  if [ ! -x "$2/bin/python" ]; then "$1" -m venv "$2"; fi
}

# venv_install VENV REQUIREMENT...: uv when it can be had (several times faster than pip on a
# cold machine), pip otherwise or when ORCHESTRATE_INSTALLER=pip (an index uv cannot use; the
# benchmark's reference). UV_NATIVE_TLS: trust the system's CA store, as pip does.
venv_install() {
  local venv=$1
  shift
  if [ "${ORCHESTRATE_INSTALLER:-uv}" != pip ] \
    && retry 2 "$venv/bin/python" -m pip install -q uv \
    && UV_NATIVE_TLS=1 retry 3 "$venv/bin/python" -m uv pip install -q --python "$venv/bin/python" "$@"; then
    return 0
  fi
  retry 3 "$venv/bin/python" -m pip install -q "$@"
}

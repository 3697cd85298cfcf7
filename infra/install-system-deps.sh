#!/usr/bin/env bash
# Installs the Debian packages the embedded services need, when they are missing.
# With --test also what only the tests need: chromium, the headless browser that loads the operator
# console (tests/integration/test_console.py, bench/console.py), and iproute2, whose `ip` cuts a broker
# off the network (tests/integration/test_cluster_partition.py); `make demo` does not install them.
# As root it runs apt-get; otherwise it prints exactly what to install and fails.
set -euo pipefail

for_tests=0
if [ "${1:-}" = "--test" ]; then for_tests=1; fi

missing=()
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
command -v kcat >/dev/null 2>&1 || missing+=(kcat)  # the integration guide's command-line client, tested
if [ "$for_tests" -eq 1 ]; then
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v ip >/dev/null 2>&1 || missing+=(iproute2)
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present (java, mvn, postgresql, prometheus, kcat$([ "$for_tests" -eq 1 ] && echo ', chromium, iproute2'))"
  exit 0
fi
# Deduplicate (prometheus may be listed twice).
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

if [ "$(id -u)" -ne 0 ]; then
  echo "error: missing system packages: ${missing[*]}" >&2
  echo "what to do: run as root, or: sudo apt-get install -y ${missing[*]}" >&2
  exit 2
fi
echo "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's packages try to start their own services; the sandbox runs its own instances instead.
if [ -x /usr/sbin/service ]; then
  service prometheus stop >/dev/null 2>&1 || true
  service postgresql stop >/dev/null 2>&1 || true
fi
echo "system packages installed"

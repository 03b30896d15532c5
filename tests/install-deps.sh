#!/usr/bin/env bash
# Installs the Debian packages exshim needs to build, test, run and benchmark, when missing.
# As root it runs apt-get; otherwise it prints the exact command to run.
set -eu
PKGS=(
  build-essential pkg-config
  libevent-dev libssl-dev libkrb5-dev libhttp-parser-dev libconfig-dev libcmocka-dev libsystemd-dev
  gss-ntlmssp krb5-kdc krb5-admin-server krb5-user
  slapd ldap-utils krb5-kdc-ldap
  clang-14 libfuzzer-14-dev libclang-rt-14-dev
  curl openssl python3 python3-requests-ntlm python3-ntlm-auth python3-gssapi
  haproxy nginx procps psmisc systemd
  prometheus
  nftables keepalived iproute2
)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "exshim: missing Debian packages; run as root:" >&2
    echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
fi
echo "exshim: installing ${missing[*]}" >&2
# Packages such as krb5-kdc, haproxy and nginx must not start system services here: tests and
# benchmarks start their own instances on loopback.
created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    created_policy=1
fi
export DEBIAN_FRONTEND=noninteractive
# slapd: no system instance (tests/e2e/realm_ldap.sh runs its own on a unix socket)
echo 'slapd slapd/no_configuration boolean true' | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
[ "$created_policy" -eq 1 ] && rm -f /usr/sbin/policy-rc.d
exit 0

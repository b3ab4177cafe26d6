#!/usr/bin/env bash
# Certificates for lab hosts reached over the network (mutual TLS).
#
#   scripts/lab-host-certs.sh DIR ADDRESS [NAME...]
#
# In DIR (made when missing, mode 0700), with openssl:
#   ca.pem, ca-key.pem            a certificate authority of the installation's
#                                 own: made once, reused by every later run.
#                                 ca-key.pem belongs on no lab host and no web
#                                 tier: keep it offline.
#   server/ADDRESS/{ca,cert,key}.pem
#                                 the lab host's engine certificate: ADDRESS
#                                 (an IP address, or a DNS name) and any NAME
#                                 as subject alternative names, usable for
#                                 serving only (extendedKeyUsage serverAuth, so
#                                 a lab host's key is no client certificate for
#                                 another). Copy the folder to the lab host as
#                                 its PLAYGROUND_ENGINE_TLS_DIR (engine.sh start
#                                 with PLAYGROUND_ENGINE_TLS_LISTEN=ADDRESS:2376).
#   client/{ca,cert,key}.pem      the web tier's certificate (clientAuth only):
#                                 PLAYGROUND_LAB_HOST_TLS_CA/_CERT/_KEY, or
#                                 DOCKER_CERT_PATH=DIR/client DOCKER_TLS_VERIFY=1
#                                 for the docker CLI. Made once, shared by every
#                                 lab host of the CA.
# A certificate that exists is kept; delete it (or its folder) to renew it.
# Certificates last PLAYGROUND_CERT_DAYS (825) days, the CA ten years. Keys are
# P-256 (ECDSA), mode 0600: give the client key to the web tier's user.
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DAYS="${PLAYGROUND_CERT_DAYS:-825}"

[ "$#" -ge 2 ] || { echo "usage: $0 DIR ADDRESS [NAME...]" >&2; exit 2; }
command -v openssl >/dev/null || die "lab-host-certs: openssl is missing (apt-get install openssl)"
DIR="$1" ADDRESS="$2"
shift 2
case "$ADDRESS" in
    */* | .* | "") die "lab-host-certs: $ADDRESS is no address or host name" ;;
esac

umask 077
mkdir -p "$DIR"

new_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# `subject_names NAME...`: the subjectAltName value, IP: for addresses.
subject_names() {
    local name names=()
    for name in "$@"; do
        if [[ "$name" =~ ^[0-9.]+$ || "$name" == *:* ]]; then names+=("IP:$name"); else names+=("DNS:$name"); fi
    done
    local IFS=,
    printf '%s\n' "${names[*]}"
}

# `issue FOLDER SUBJECT USAGE [SAN]`: a key and a certificate signed by the CA.
issue() {
    local folder="$1" subject="$2" usage="$3" san="${4:-}" extensions
    if [ -f "$folder/cert.pem" ]; then
        say "lab-host-certs: $folder/cert.pem exists; kept"
        return 0
    fi
    mkdir -p "$folder"
    new_key "$folder/key.pem"
    extensions="$(mktemp)"
    {
        echo "basicConstraints = critical, CA:FALSE"
        echo "keyUsage = critical, digitalSignature, keyEncipherment"
        echo "extendedKeyUsage = $usage"
        if [ -n "$san" ]; then echo "subjectAltName = $san"; fi
    } > "$extensions"
    openssl req -new -key "$folder/key.pem" -subj "$subject" 2>/dev/null |
        openssl x509 -req -CA "$DIR/ca.pem" -CAkey "$DIR/ca-key.pem" -CAcreateserial \
            -days "$DAYS" -sha256 -extfile "$extensions" -out "$folder/cert.pem" 2>/dev/null ||
        { rm -f "$extensions"; die "lab-host-certs: openssl could not sign $folder/cert.pem"; }
    rm -f "$extensions"
    cp "$DIR/ca.pem" "$folder/ca.pem"
    chmod 0644 "$folder/cert.pem" "$folder/ca.pem"
    say "lab-host-certs: $folder: $subject ($usage${san:+, $san})"
}

if [ ! -f "$DIR/ca.pem" ]; then
    new_key "$DIR/ca-key.pem"
    openssl req -x509 -new -key "$DIR/ca-key.pem" -sha256 -days 3650 \
        -subj "/CN=playground lab hosts CA $(date -u +%Y-%m-%d)" \
        -addext "basicConstraints = critical, CA:TRUE, pathlen:0" \
        -addext "keyUsage = critical, keyCertSign, cRLSign" \
        -out "$DIR/ca.pem" 2>/dev/null || die "lab-host-certs: openssl could not make the CA"
    chmod 0644 "$DIR/ca.pem"
    say "lab-host-certs: new CA $DIR/ca.pem (keep $DIR/ca-key.pem offline)"
fi

issue "$DIR/server/$ADDRESS" "/CN=$ADDRESS" serverAuth "$(subject_names "$ADDRESS" "$@")"
issue "$DIR/client" "/CN=playground web tier" clientAuth

#!/bin/bash
# The broker's TLS material, generated inside the compose project (no key or certificate is
# committed): a private CA, used once to sign the broker's certificate (names kafka and
# localhost) and then discarded, the broker's PKCS12 keystore and the CA certificate in PEM.
#
#   TLS_DIR (default /etc/kafka/tls): broker.p12, store.pass (its random password), ca.pem;
#     readable by the broker only (the kafka-tls volume).
#   CA_DIR (default /etc/observatoire/kafka-ca): ca.pem only, world-readable: the clients'
#     OBS_KAFKA_SSL_CAFILE (the kafka-ca volume).
#
# Runs with keytool (in the apache/kafka image) as the compose step `kafka-tls`; does nothing
# when the material exists. To renew it (the certificate is valid 825 days), remove both
# volumes and start again: docs/deployment.md, "TLS".
set -euo pipefail

tls=${TLS_DIR:-/etc/kafka/tls}
ca_dir=${CA_DIR:-/etc/observatoire/kafka-ca}
owner=${TLS_OWNER:-appuser}

if [[ -s "$tls/broker.p12" && -s "$tls/store.pass" && -s "$tls/ca.pem" && -s "$ca_dir/ca.pem" ]]; then
  echo "kafka TLS material present in $tls and $ca_dir: kept"
  exit 0
fi

umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pass=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')

keytool -genkeypair -noprompt -keystore "$work/ca.p12" -storetype PKCS12 -storepass "$pass" \
  -alias ca -dname "CN=Observatoire Kafka CA" -keyalg RSA -keysize 3072 -validity 3650 \
  -ext bc:c
keytool -exportcert -keystore "$work/ca.p12" -storepass "$pass" -alias ca -rfc \
  -file "$work/ca.pem"

keytool -genkeypair -noprompt -keystore "$work/broker.p12" -storetype PKCS12 -storepass "$pass" \
  -alias broker -dname "CN=kafka" -keyalg RSA -keysize 3072 -validity 825
keytool -certreq -keystore "$work/broker.p12" -storepass "$pass" -alias broker \
  -file "$work/broker.csr"
keytool -gencert -keystore "$work/ca.p12" -storepass "$pass" -alias ca -rfc -validity 825 \
  -infile "$work/broker.csr" -outfile "$work/broker.pem" \
  -ext "SAN=dns:kafka,dns:localhost" -ext "KU=digitalSignature,keyEncipherment" \
  -ext "EKU=serverAuth,clientAuth"
keytool -importcert -noprompt -keystore "$work/broker.p12" -storepass "$pass" -alias ca \
  -file "$work/ca.pem"
keytool -importcert -noprompt -keystore "$work/broker.p12" -storepass "$pass" -alias broker \
  -file "$work/broker.pem"

mkdir -p "$tls" "$ca_dir"
install -m 0400 "$work/broker.p12" "$tls/broker.p12"
printf '%s' "$pass" >"$tls/store.pass"
chmod 0400 "$tls/store.pass"
install -m 0444 "$work/ca.pem" "$tls/ca.pem"
install -m 0444 "$work/ca.pem" "$ca_dir/ca.pem"
chmod 0755 "$ca_dir"
if id "$owner" >/dev/null 2>&1; then
  chown -R "$owner" "$tls"
fi
echo "kafka TLS material written: $tls (broker), $ca_dir/ca.pem (clients)"

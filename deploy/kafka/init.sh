#!/bin/bash
# The compose step `kafka-init`: as the admin principal, creates (or updates) the SCRAM-SHA-512
# credential of each service principal and adds the ACLs of deploy/kafka/acls.txt.
#
# Idempotent: a credential is overwritten with the password of deploy/secrets.env (a rotation
# is: change it there, `docker compose up -d`), an existing ACL is left as it is. It only adds:
# an ACL dropped from the table must be removed by hand (docs/deployment.md).
#
# Environment: KAFKA_ADMIN_PASSWORD and KAFKA_<PRINCIPAL>_PASSWORD for each principal of the
# table, OBS_TOPIC_PREFIX (optional, prepended to topic and group names).
set -euo pipefail

bootstrap=${KAFKA_BOOTSTRAP:-kafka:9092}
table=${ACL_TABLE:-/etc/observatoire/kafka/acls.txt}
prefix=${OBS_TOPIC_PREFIX:-}
bin=/opt/kafka/bin

password_ok() { [[ "$1" =~ ^[A-Za-z0-9._-]{16,}$ ]]; }

: "${KAFKA_ADMIN_PASSWORD:?KAFKA_ADMIN_PASSWORD is not set: run deploy/make-secrets.sh}"
password_ok "$KAFKA_ADMIN_PASSWORD" || { echo "KAFKA_ADMIN_PASSWORD: 16 or more letters, digits, '.', '_' or '-'" >&2; exit 2; }

umask 077
admin=$(mktemp)
trap 'rm -f "$admin"' EXIT
cat >"$admin" <<PROPERTIES
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$KAFKA_ADMIN_PASSWORD";
ssl.truststore.type=PEM
ssl.truststore.location=${CA_FILE:-/etc/observatoire/kafka-ca/ca.pem}
PROPERTIES

# Every principal named in the table, once, in table order.
principals=$(awk '!/^[[:space:]]*(#|$)/ && !seen[$1]++ { print $1 }' "$table")

for principal in $principals; do
  var="KAFKA_${principal^^}_PASSWORD"
  password=${!var:-}
  [[ -n "$password" ]] || { echo "$var is not set: run deploy/make-secrets.sh" >&2; exit 2; }
  password_ok "$password" || { echo "$var: 16 or more letters, digits, '.', '_' or '-'" >&2; exit 2; }
  "$bin/kafka-configs.sh" --bootstrap-server "$bootstrap" --command-config "$admin" \
    --alter --entity-type users --entity-name "$principal" \
    --add-config "SCRAM-SHA-512=[password=$password]"
done

while read -r principal resource pattern operations names; do
  [[ -z "$principal" || "$principal" == \#* ]] && continue
  args=(--allow-principal "User:$principal" --resource-pattern-type "$pattern")
  IFS=, read -r -a ops <<<"$operations"
  for op in "${ops[@]}"; do
    args+=(--operation "$op")
  done
  for name in $names; do
    case "$resource" in
      topic) args+=(--topic "$prefix$name") ;;
      group) args+=(--group "$prefix$name") ;;
      cluster) args+=(--cluster) ;;
      *) echo "$table: unknown resource type $resource" >&2; exit 2 ;;
    esac
  done
  "$bin/kafka-acls.sh" --bootstrap-server "$bootstrap" --command-config "$admin" --add "${args[@]}"
done <"$table"

echo "kafka principals and ACLs applied: ${principals//$'\n'/ }"

#!/bin/bash
# Starts the single-node Apache Kafka (KRaft) of docker-compose.yml with authentication on:
# writes the broker's configuration (mode 0600, never on the command line), formats the log
# directory on first start with the admin's SCRAM credential (kafka-storage --add-scram,
# KIP-900: the broker authenticates to itself with it), then runs the broker.
#
# Listeners: CLIENT (kafka:9092, SASL_SSL with SCRAM-SHA-512) for every client and between
# brokers; CONTROLLER (localhost:9093, SASL_PLAINTEXT with PLAIN) for the KRaft quorum, bound to
# the loopback interface: only this container reaches it. KRaft keeps SCRAM credentials in the
# metadata log, which the controller listener must be up to serve, so that listener
# authenticates with PLAIN and a credential from this file (KAFKA-15513).
#
# Environment: CLUSTER_ID, KAFKA_ADMIN_PASSWORD (deploy/secrets.env). TLS material: the
# kafka-tls volume written by deploy/kafka/make-certs.sh, mounted at /etc/kafka/tls.
set -euo pipefail

: "${CLUSTER_ID:?CLUSTER_ID is not set}"
: "${KAFKA_ADMIN_PASSWORD:?KAFKA_ADMIN_PASSWORD is not set: run deploy/make-secrets.sh}"
if [[ ! "$KAFKA_ADMIN_PASSWORD" =~ ^[A-Za-z0-9._-]{16,}$ ]]; then
  # The password goes into JAAS and SCRAM option syntax, where quotes, commas and brackets
  # are separators.
  echo "KAFKA_ADMIN_PASSWORD: 16 or more letters, digits, '.', '_' or '-'" >&2
  exit 2
fi

tls=/etc/kafka/tls
conf=/opt/kafka/config/observatoire
for file in broker.p12 store.pass ca.pem; do
  [[ -s "$tls/$file" ]] || { echo "$tls/$file is missing: the kafka-tls step did not run" >&2; exit 2; }
done
store_pass=$(<"$tls/store.pass")

umask 077
mkdir -p "$conf"
cat >"$conf/server.properties" <<PROPERTIES
node.id=1
process.roles=broker,controller
controller.quorum.voters=1@localhost:9093
listeners=CLIENT://:9092,CONTROLLER://localhost:9093
advertised.listeners=CLIENT://kafka:9092
listener.security.protocol.map=CLIENT:SASL_SSL,CONTROLLER:SASL_PLAINTEXT
inter.broker.listener.name=CLIENT
controller.listener.names=CONTROLLER

listener.name.client.sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.client.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$KAFKA_ADMIN_PASSWORD";
listener.name.controller.sasl.enabled.mechanisms=PLAIN
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$KAFKA_ADMIN_PASSWORD" user_admin="$KAFKA_ADMIN_PASSWORD";

ssl.keystore.type=PKCS12
ssl.keystore.location=$tls/broker.p12
ssl.keystore.password=$store_pass
ssl.key.password=$store_pass
ssl.truststore.type=PEM
ssl.truststore.location=$tls/ca.pem
ssl.client.auth=none

authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin
allow.everyone.if.no.acl.found=false

log.dirs=/var/lib/kafka/data
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
auto.create.topics.enable=false
PROPERTIES

# The admin's client configuration: the healthcheck and the operators' admin commands
# (docker compose exec kafka ... --command-config /opt/kafka/config/observatoire/admin.properties).
cat >"$conf/admin.properties" <<PROPERTIES
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$KAFKA_ADMIN_PASSWORD";
ssl.truststore.type=PEM
ssl.truststore.location=$tls/ca.pem
PROPERTIES

# First start only: an already formatted directory is left alone (and keeps the credentials
# it was formatted with; later changes go through kafka-configs, deploy/kafka/init.sh).
/opt/kafka/bin/kafka-storage.sh format --ignore-formatted \
  --cluster-id "$CLUSTER_ID" --config "$conf/server.properties" \
  --add-scram "SCRAM-SHA-512=[name=admin,password=$KAFKA_ADMIN_PASSWORD]"

exec /opt/kafka/bin/kafka-server-start.sh "$conf/server.properties"

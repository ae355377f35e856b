#!/bin/sh
# Starts the compose file's Redis with one ACL user per service (deploy/redis/users.acl.template,
# the rules of docs/deployment.md) and the `default` user off. The template's placeholders
# become the SHA-256 of each password from deploy/secrets.env: the ACL file written here
# (/data/users.acl, mode 0600, owned by the redis user once the image's entrypoint has dropped
# privileges) holds no password in clear, and none is on a command line.
set -eu

umask 077
rendered=/data/users.acl
template=/etc/observatoire/redis/users.acl.template

sha256() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

script=""
for name in SCORER PUBLISHER API OPERATOR; do
  eval "password=\${REDIS_${name}_PASSWORD:-}"
  if [ -z "$password" ]; then
    echo "REDIS_${name}_PASSWORD is not set: run deploy/make-secrets.sh" >&2
    exit 2
  fi
  script="${script}s/{{REDIS_${name}_PASSWORD_SHA256}}/$(sha256 "$password")/;"
done
sed -e "$script" "$template" >"$rendered.new"
if grep -q '{{' "$rendered.new"; then
  echo "$template: a placeholder has no password" >&2
  exit 2
fi
mv "$rendered.new" "$rendered"

exec docker-entrypoint.sh redis-server --aclfile "$rendered" \
  --save '' --appendonly no --hash-max-listpack-value 256

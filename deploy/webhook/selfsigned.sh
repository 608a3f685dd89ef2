#!/usr/bin/env bash
# The webhook's certificates without cert-manager: a self-signed CA, a serving certificate for
# the webhook Service signed by it, the Secrets the operator mounts, and the CA bundle patched
# into the webhook configuration.
#
#   deploy/webhook/selfsigned.sh                  # make and install (uses kubectl's context)
#   deploy/webhook/selfsigned.sh --certs-only DIR # only write ca.crt, tls.crt, tls.key to DIR
#
# Apply deploy/ (without certificate.yaml) first, run this, then restart the operator pods,
# which read the certificate when they start:
#   kubectl -n artifact-operator-system rollout restart deployment/artifact-operator
# Re-run it (and restart) before the certificate expires (DAYS, default 365).
set -euo pipefail

NAMESPACE=${NAMESPACE:-artifact-operator-system}
SERVICE=${SERVICE:-artifact-operator-webhook-service}
DAYS=${DAYS:-365}
CERTS_ONLY=0
if [[ "${1:-}" == "--certs-only" ]]; then
  CERTS_ONLY=1
  DIR=${2:?usage: selfsigned.sh --certs-only DIR}
  mkdir -p "$DIR"
else
  DIR=$(mktemp -d)
  trap 'rm -rf "$DIR"' EXIT
fi

openssl req -x509 -newkey rsa:2048 -nodes -days "$DAYS" -subj "/CN=artifact-operator-webhook-ca" \
  -keyout "$DIR/ca.key" -out "$DIR/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=$SERVICE.$NAMESPACE.svc" \
  -keyout "$DIR/tls.key" -out "$DIR/tls.csr" 2>/dev/null
printf 'subjectAltName=DNS:%s.%s.svc,DNS:%s.%s.svc.cluster.local\nextendedKeyUsage=serverAuth\n' \
  "$SERVICE" "$NAMESPACE" "$SERVICE" "$NAMESPACE" > "$DIR/san.ext"
openssl x509 -req -in "$DIR/tls.csr" -CA "$DIR/ca.crt" -CAkey "$DIR/ca.key" -CAcreateserial \
  -days "$DAYS" -extfile "$DIR/san.ext" -out "$DIR/tls.crt" 2>/dev/null
rm -f "$DIR/ca.key" "$DIR/tls.csr" "$DIR/san.ext" "$DIR/ca.srl"  # the CA signs once, then goes

if [[ $CERTS_ONLY == 1 ]]; then
  echo "wrote $DIR/ca.crt $DIR/tls.crt $DIR/tls.key"
  exit 0
fi

kubectl -n "$NAMESPACE" create secret tls webhook-server-cert \
  --cert="$DIR/tls.crt" --key="$DIR/tls.key" --dry-run=client -o yaml | kubectl apply -f -
CA_BUNDLE=$(base64 < "$DIR/ca.crt" | tr -d '\n')
kubectl patch validatingwebhookconfiguration/artifact-operator-validating-webhook-configuration \
  --type=json \
  -p "[{\"op\":\"add\",\"path\":\"/webhooks/0/clientConfig/caBundle\",\"value\":\"$CA_BUNDLE\"}]"
echo "webhook certificate installed in $NAMESPACE; CA bundle patched"

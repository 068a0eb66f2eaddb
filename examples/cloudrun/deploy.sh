#!/usr/bin/env bash
# First deployment of observer to Cloud Run, step by step as in docs/deployment.md.
#
#   PROJECT_ID=my-project REGION=europe-west1 \
#   WEBHOOK_SECRET="$(openssl rand -hex 32)" GITHUB_TOKEN=github_pat_... \
#   examples/cloudrun/deploy.sh
#
# Needs gcloud, logged in with rights to create the resources below. Builds the
# image with Cloud Build, so no local Docker is needed. Later releases only need
# steps 1 and 6 with a new tag. NETWORK and SUBNET (both "default" unless set)
# are where the Memorystore instance lives and where Cloud Run's direct VPC
# egress leaves from; the subnet needs a few free addresses per instance.
set -euo pipefail
: "${PROJECT_ID:?set PROJECT_ID}" "${REGION:?set REGION}"
: "${WEBHOOK_SECRET:?set WEBHOOK_SECRET}" "${GITHUB_TOKEN:?set GITHUB_TOKEN}"
cd "$(dirname "$0")/../.."

TAG="${TAG:-0.1.0}"
NETWORK="${NETWORK:-default}"
SUBNET="${SUBNET:-default}"
IMAGE="$REGION-docker.pkg.dev/$PROJECT_ID/observer/observer:$TAG"
SERVICE_ACCOUNT="observer@$PROJECT_ID.iam.gserviceaccount.com"

gcloud config set project "$PROJECT_ID"
gcloud services enable run.googleapis.com artifactregistry.googleapis.com \
  cloudbuild.googleapis.com secretmanager.googleapis.com \
  monitoring.googleapis.com logging.googleapis.com redis.googleapis.com

# 1. The image, built from the Dockerfile by Cloud Build.
gcloud artifacts repositories create observer --repository-format=docker --location="$REGION"
gcloud builds submit --region="$REGION" --tag="$IMAGE" .

# 2. The service's own identity: it writes metrics and logs, and reads its secrets.
gcloud iam service-accounts create observer --display-name="observer"
gcloud projects add-iam-policy-binding "$PROJECT_ID" \
  --member="serviceAccount:$SERVICE_ACCOUNT" --role=roles/monitoring.metricWriter
gcloud projects add-iam-policy-binding "$PROJECT_ID" \
  --member="serviceAccount:$SERVICE_ACCOUNT" --role=roles/logging.logWriter

# 3. The state store the instances share: Memorystore for Redis, standard tier
#    (a replica with automatic failover), with AUTH, on the VPC network. Creating
#    it takes a few minutes.
gcloud redis instances create observer --region="$REGION" --tier=standard --size=1 \
  --redis-version=redis_7_2 --network="projects/$PROJECT_ID/global/networks/$NETWORK" \
  --enable-auth
STATE_HOST="$(gcloud redis instances describe observer --region="$REGION" --format='value(host)')"
STATE_AUTH="$(gcloud redis instances get-auth-string observer --region="$REGION" \
  --format='value(authString)')"

# 4. Secrets in Secret Manager, readable by the service's identity.
printf '%s' "$WEBHOOK_SECRET" | gcloud secrets create observer-webhook-secret --data-file=-
printf '%s' "$GITHUB_TOKEN" | gcloud secrets create observer-github-token --data-file=-
printf 'redis://:%s@%s:6379/0' "$STATE_AUTH" "$STATE_HOST" |
  gcloud secrets create observer-state-url --data-file=-
# What the metrics sidecar scrapes (not secret, but mounted the same way).
gcloud secrets create observer-runmonitoring --data-file=examples/cloudrun/runmonitoring.yaml
for secret in observer-webhook-secret observer-github-token observer-state-url \
  observer-runmonitoring; do
  gcloud secrets add-iam-policy-binding "$secret" \
    --member="serviceAccount:$SERVICE_ACCOUNT" --role=roles/secretmanager.secretAccessor
done

# 5. The service: observer and the Managed Prometheus sidecar, on the VPC.
rendered="$(mktemp)"
sed -e "s|REGION-docker.pkg.dev/PROJECT_ID/observer/observer:0.1.0|$IMAGE|" \
    -e "s/PROJECT_ID/$PROJECT_ID/g" \
    -e "s|\"network\":\"default\",\"subnetwork\":\"default\"|\"network\":\"$NETWORK\",\"subnetwork\":\"$SUBNET\"|" \
    examples/cloudrun/service.yaml > "$rendered"
gcloud run services replace "$rendered" --region="$REGION"

# 6. GitHub cannot authenticate to Google: let anyone invoke the service; every
#    delivery is still checked against the webhook secret.
gcloud run services add-iam-policy-binding observer --region="$REGION" \
  --member=allUsers --role=roles/run.invoker

echo "Payload URL for GitHub: $(gcloud run services describe observer --region="$REGION" --format='value(status.url)')/webhook"

#!/usr/bin/env bash
# First deployment of observer to Azure Container Apps, step by step as in
# docs/deployment.md.
#
#   RESOURCE_GROUP=observer LOCATION=westeurope REGISTRY=observeracr123 \
#   KEY_VAULT=observer-kv-123 REDIS_CACHE=observer-state-123 \
#   WEBHOOK_SECRET="$(openssl rand -hex 32)" GITHUB_TOKEN=github_pat_... \
#   examples/azure/deploy.sh
#
# Needs the Azure CLI, logged in with rights to create the resources and role
# assignments below. Builds the image with ACR Tasks, so no local Docker is
# needed. Role assignments can take a minute to apply: if a step right after one
# fails with 403, wait and run the remaining steps again. REGISTRY, KEY_VAULT and
# REDIS_CACHE (the Azure Cache for Redis the replicas share their state in) are
# names unique across Azure.
set -euo pipefail
: "${RESOURCE_GROUP:?}" "${LOCATION:?}" "${REGISTRY:?}" "${KEY_VAULT:?}" "${REDIS_CACHE:?}"
: "${WEBHOOK_SECRET:?}" "${GITHUB_TOKEN:?}"
TAG="${TAG:-0.1.0}"
cd "$(dirname "$0")/../.."
work="$(mktemp -d)"

# Percent-encodes a URL's user information (an access key has + / =).
urlencode() {
  local text="$1" encoded="" char i
  for ((i = 0; i < ${#text}; i++)); do
    char="${text:i:1}"
    case "$char" in
      [A-Za-z0-9._~-]) encoded+="$char" ;;
      *) printf -v char '%%%02X' "'$char" && encoded+="$char" ;;
    esac
  done
  printf '%s' "$encoded"
}

az config set extension.use_dynamic_install=yes_without_prompt
az extension add --name containerapp --upgrade
az provider register --namespace Microsoft.App --wait
az provider register --namespace Microsoft.OperationalInsights --wait
az provider register --namespace Microsoft.Monitor --wait
az provider register --namespace Microsoft.Cache --wait
az group create --name "$RESOURCE_GROUP" --location "$LOCATION"
SUBSCRIPTION_ID="$(az account show --query id --output tsv)"

# 1. The image, built from the Dockerfile by ACR Tasks.
az acr create --resource-group "$RESOURCE_GROUP" --name "$REGISTRY" --sku Basic
az acr build --registry "$REGISTRY" --image "observer:$TAG" .

# 2. The app's identity: pulls the image, reads the secrets, writes metrics.
az identity create --resource-group "$RESOURCE_GROUP" --name observer
PRINCIPAL_ID="$(az identity show --resource-group "$RESOURCE_GROUP" --name observer --query principalId --output tsv)"
CLIENT_ID="$(az identity show --resource-group "$RESOURCE_GROUP" --name observer --query clientId --output tsv)"
az role assignment create --assignee-object-id "$PRINCIPAL_ID" --assignee-principal-type ServicePrincipal \
  --role AcrPull --scope "$(az acr show --name "$REGISTRY" --query id --output tsv)"

# 3. Secrets in Key Vault (RBAC mode).
az keyvault create --resource-group "$RESOURCE_GROUP" --name "$KEY_VAULT" --location "$LOCATION" \
  --enable-rbac-authorization true
VAULT_ID="$(az keyvault show --name "$KEY_VAULT" --query id --output tsv)"
az role assignment create --assignee "$(az ad signed-in-user show --query id --output tsv)" \
  --role "Key Vault Secrets Officer" --scope "$VAULT_ID"
az role assignment create --assignee-object-id "$PRINCIPAL_ID" --assignee-principal-type ServicePrincipal \
  --role "Key Vault Secrets User" --scope "$VAULT_ID"
az keyvault secret set --vault-name "$KEY_VAULT" --name observer-webhook-secret --value "$WEBHOOK_SECRET" --output none
az keyvault secret set --vault-name "$KEY_VAULT" --name observer-github-token --value "$GITHUB_TOKEN" --output none

# 4. The state store the replicas share: Azure Cache for Redis, Standard C0 (a
#    replica with automatic failover), TLS only (port 6380, TLS 1.2 or later).
#    Its URL carries the access key, so it is a Key Vault secret too. Creating
#    it takes up to twenty minutes.
az redis create --resource-group "$RESOURCE_GROUP" --name "$REDIS_CACHE" --location "$LOCATION" \
  --sku Standard --vm-size c0 --minimum-tls-version 1.2 --output none
STATE_KEY="$(az redis list-keys --resource-group "$RESOURCE_GROUP" --name "$REDIS_CACHE" \
  --query primaryKey --output tsv)"
az keyvault secret set --vault-name "$KEY_VAULT" --name observer-state-url --output none \
  --value "rediss://:$(urlencode "$STATE_KEY")@$REDIS_CACHE.redis.cache.windows.net:6380/0"

# 5. An Azure Monitor workspace (managed Prometheus) and the right to write to it.
az monitor account create --resource-group "$RESOURCE_GROUP" --name observer-metrics --location "$LOCATION"
DCR_ID="$(az monitor account show --resource-group "$RESOURCE_GROUP" --name observer-metrics \
  --query defaultIngestionSettings.dataCollectionRuleResourceId --output tsv)"
DCE_ID="$(az monitor account show --resource-group "$RESOURCE_GROUP" --name observer-metrics \
  --query defaultIngestionSettings.dataCollectionEndpointResourceId --output tsv)"
INGESTION_ENDPOINT="$(az monitor data-collection endpoint show --ids "$DCE_ID" \
  --query metricsIngestion.endpoint --output tsv)"
DCR_IMMUTABLE_ID="$(az monitor data-collection rule show --ids "$DCR_ID" --query immutableId --output tsv)"
az role assignment create --assignee-object-id "$PRINCIPAL_ID" --assignee-principal-type ServicePrincipal \
  --role "Monitoring Metrics Publisher" --scope "$DCR_ID"

# 6. The Container Apps environment and the app: observer and its Prometheus agent.
az containerapp env create --resource-group "$RESOURCE_GROUP" --name observer-env --location "$LOCATION"
sed -e "s/SUBSCRIPTION_ID/$SUBSCRIPTION_ID/g" -e "s/RESOURCE_GROUP/$RESOURCE_GROUP/g" \
    -e "s/^location: LOCATION/location: $LOCATION/" \
    -e "s/REGISTRY\.azurecr\.io\/observer:0\.1\.0/$REGISTRY.azurecr.io\/observer:$TAG/" \
    -e "s/REGISTRY/$REGISTRY/g" -e "s/KEY_VAULT/$KEY_VAULT/g" \
    -e "s|https://INGESTION_ENDPOINT|$INGESTION_ENDPOINT|" -e "s/DCR_IMMUTABLE_ID/$DCR_IMMUTABLE_ID/" \
    -e "s/00000000-0000-0000-0000-000000000000/$CLIENT_ID/" \
    examples/azure/containerapp.yaml > "$work/containerapp.yaml"
az containerapp create --resource-group "$RESOURCE_GROUP" --name observer --yaml "$work/containerapp.yaml"

echo "Payload URL for GitHub: https://$(az containerapp show --resource-group "$RESOURCE_GROUP" --name observer \
  --query properties.configuration.ingress.fqdn --output tsv)/webhook"

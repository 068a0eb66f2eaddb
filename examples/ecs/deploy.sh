#!/usr/bin/env bash
# First deployment of observer to ECS on Fargate, step by step as in docs/deployment.md.
#
#   AWS_REGION=eu-west-1 AWS_ACCOUNT_ID=111122223333 VPC_ID=vpc-... \
#   SUBNETS=subnet-aaa,subnet-bbb ALB_LISTENER_ARN=arn:aws:elasticloadbalancing:... \
#   ALB_SECURITY_GROUP=sg-... WEBHOOK_SECRET="$(openssl rand -hex 32)" \
#   GITHUB_TOKEN=github_pat_... ARCH=ARM64 examples/ecs/deploy.sh
#
# Needs the AWS CLI v2, Docker with buildx, and an existing Application Load
# Balancer with an HTTPS listener in private-subnet reach of the tasks. ARCH is
# ARM64 (Graviton, cheaper) or X86_64; the image is built for both. The tasks
# share their state in an ElastiCache for Valkey replication group in the same
# subnets (TLS and an AUTH token; STATE_URL comes from Secrets Manager).
set -euo pipefail
: "${AWS_REGION:?}" "${AWS_ACCOUNT_ID:?}" "${VPC_ID:?}" "${SUBNETS:?}"
: "${ALB_LISTENER_ARN:?}" "${ALB_SECURITY_GROUP:?}"
: "${WEBHOOK_SECRET:?}" "${GITHUB_TOKEN:?}"
ARCH="${ARCH:-ARM64}"
TAG="${TAG:-0.1.0}"
export AWS_REGION
cd "$(dirname "$0")/../.."
work="$(mktemp -d)"

REGISTRY="$AWS_ACCOUNT_ID.dkr.ecr.$AWS_REGION.amazonaws.com"
IMAGE="$REGISTRY/observer:$TAG"

# 1. The image, for both architectures.
aws ecr create-repository --repository-name observer --image-scanning-configuration scanOnPush=true
aws ecr get-login-password | docker login --username AWS --password-stdin "$REGISTRY"
docker buildx build --platform linux/arm64,linux/amd64 --tag "$IMAGE" --push .

# 2. The Amazon Managed Service for Prometheus workspace the sidecar writes to.
WORKSPACE_ID="$(aws amp create-workspace --alias observer --query workspaceId --output text)"

# 3. Network: the tasks accept port 8080 from the load balancer only; the state
#    store accepts port 6379 from the tasks only.
TASK_SECURITY_GROUP="$(aws ec2 create-security-group --group-name observer-tasks \
  --description "observer tasks" --vpc-id "$VPC_ID" --query GroupId --output text)"
aws ec2 authorize-security-group-ingress --group-id "$TASK_SECURITY_GROUP" \
  --protocol tcp --port 8080 --source-group "$ALB_SECURITY_GROUP"
STATE_SECURITY_GROUP="$(aws ec2 create-security-group --group-name observer-state \
  --description "observer state store" --vpc-id "$VPC_ID" --query GroupId --output text)"
aws ec2 authorize-security-group-ingress --group-id "$STATE_SECURITY_GROUP" \
  --protocol tcp --port 6379 --source-group "$TASK_SECURITY_GROUP"

# 4. The state store the tasks share: Valkey on ElastiCache, a primary and a
#    replica in two zones with automatic failover, encrypted in transit and at
#    rest, with an AUTH token (hex: nothing to escape in the URL). Creating it
#    takes about ten minutes.
STATE_AUTH_TOKEN="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
subnet_list="${SUBNETS//,/ }"
# shellcheck disable=SC2086 # one argument per subnet
aws elasticache create-cache-subnet-group --cache-subnet-group-name observer \
  --cache-subnet-group-description "observer state store" --subnet-ids $subnet_list
aws elasticache create-replication-group --replication-group-id observer \
  --replication-group-description "observer state store" \
  --engine valkey --cache-node-type cache.t4g.micro \
  --num-cache-clusters 2 --automatic-failover-enabled --multi-az-enabled \
  --cache-subnet-group-name observer --security-group-ids "$STATE_SECURITY_GROUP" \
  --transit-encryption-enabled --at-rest-encryption-enabled \
  --auth-token "$STATE_AUTH_TOKEN"
aws elasticache wait replication-group-available --replication-group-id observer
STATE_HOST="$(aws elasticache describe-replication-groups --replication-group-id observer \
  --query 'ReplicationGroups[0].NodeGroups[0].PrimaryEndpoint.Address' --output text)"

# 5. Secrets in Secrets Manager (the store's URL carries its token), and the
#    sidecar's configuration in SSM.
WEBHOOK_SECRET_ARN="$(aws secretsmanager create-secret --name observer/webhook-secret \
  --secret-string "$WEBHOOK_SECRET" --query ARN --output text)"
GITHUB_TOKEN_ARN="$(aws secretsmanager create-secret --name observer/github-token \
  --secret-string "$GITHUB_TOKEN" --query ARN --output text)"
STATE_URL_ARN="$(aws secretsmanager create-secret --name observer/state-url \
  --secret-string "rediss://:$STATE_AUTH_TOKEN@$STATE_HOST:6379/0" --query ARN --output text)"
sed -e "s/us-east-1/$AWS_REGION/g" -e "s/ws-00000000-0000-0000-0000-000000000000/$WORKSPACE_ID/g" \
  examples/ecs/adot-config.yaml > "$work/adot-config.yaml"
aws ssm put-parameter --name /observer/adot-config --type String \
  --value "file://$work/adot-config.yaml"

# 6. Roles: the execution role pulls the image and reads the secrets; the task
#    role lets the sidecar remote-write. observer itself needs no AWS rights.
for policy in trust-policy execution-policy task-policy; do
  sed -e "s/123456789012/$AWS_ACCOUNT_ID/g" -e "s/us-east-1/$AWS_REGION/g" \
      -e "s/ws-00000000-0000-0000-0000-000000000000/$WORKSPACE_ID/g" \
      "examples/ecs/iam/$policy.json" > "$work/$policy.json"
done
aws iam create-role --role-name observer-task-execution \
  --assume-role-policy-document "file://$work/trust-policy.json"
aws iam attach-role-policy --role-name observer-task-execution \
  --policy-arn arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy
aws iam put-role-policy --role-name observer-task-execution --policy-name observer-secrets \
  --policy-document "file://$work/execution-policy.json"
aws iam create-role --role-name observer-task \
  --assume-role-policy-document "file://$work/trust-policy.json"
aws iam put-role-policy --role-name observer-task --policy-name observer-remote-write \
  --policy-document "file://$work/task-policy.json"

# 7. Logs and the task definition.
aws logs create-log-group --log-group-name /ecs/observer
aws logs put-retention-policy --log-group-name /ecs/observer --retention-in-days 30
sed -e "s|arn:aws:secretsmanager:us-east-1:123456789012:secret:observer/webhook-secret-AbCdEf|$WEBHOOK_SECRET_ARN|" \
    -e "s|arn:aws:secretsmanager:us-east-1:123456789012:secret:observer/github-token-AbCdEf|$GITHUB_TOKEN_ARN|" \
    -e "s|arn:aws:secretsmanager:us-east-1:123456789012:secret:observer/state-url-AbCdEf|$STATE_URL_ARN|" \
    -e "s|123456789012.dkr.ecr.us-east-1.amazonaws.com/observer:0.1.0|$IMAGE|" \
    -e "s/123456789012/$AWS_ACCOUNT_ID/g" -e "s/us-east-1/$AWS_REGION/g" \
    -e "s/\"cpuArchitecture\": \"ARM64\"/\"cpuArchitecture\": \"$ARCH\"/" \
    examples/ecs/taskdef.json > "$work/taskdef.json"
aws ecs register-task-definition --cli-input-json "file://$work/taskdef.json"

# 8. The load balancer sends POST /webhook to the tasks and checks /readyz
#    (which fails while the state store cannot be reached).
TARGET_GROUP_ARN="$(aws elbv2 create-target-group --name observer --protocol HTTP --port 8080 \
  --vpc-id "$VPC_ID" --target-type ip --health-check-path /readyz \
  --health-check-interval-seconds 10 --healthy-threshold-count 2 \
  --unhealthy-threshold-count 2 --matcher HttpCode=200 \
  --query 'TargetGroups[0].TargetGroupArn' --output text)"
aws elbv2 modify-target-group-attributes --target-group-arn "$TARGET_GROUP_ARN" \
  --attributes Key=deregistration_delay.timeout_seconds,Value=15
aws elbv2 create-rule --listener-arn "$ALB_LISTENER_ARN" --priority 100 \
  --conditions Field=path-pattern,Values=/webhook \
  --actions Type=forward,TargetGroupArn="$TARGET_GROUP_ARN"

# 9. Cluster and service: two tasks, rolled one at a time, rolled back on failure.
aws ecs create-cluster --cluster-name observer
subnets_json="$(printf '%s' "$SUBNETS" | sed -e 's/^/["/' -e 's/,/", "/g' -e 's/$/"]/')"
sed -e "s|\"subnets\": \[.*\]|\"subnets\": $subnets_json|" \
    -e "s/sg-0123456789abcdef0/$TASK_SECURITY_GROUP/" \
    -e "s|arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/observer/0123456789abcdef|$TARGET_GROUP_ARN|" \
    examples/ecs/service.json > "$work/service.json"
aws ecs create-service --cli-input-json "file://$work/service.json"

echo "Payload URL for GitHub: https://<your load balancer's host name>/webhook"

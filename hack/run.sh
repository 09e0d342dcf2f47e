#!/usr/bin/env bash
# `make run`: a local control plane, the CRDs, the operator and the sample triggers, in the foreground.
# Ctrl-C stops everything and removes the control plane's data. Prints how to look at what happens.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=.venv/bin/python
STATE="${STARGRAPH_RUN_DIR:-$PWD/.run}"
PORT="${STARGRAPH_PORT:-8080}"
KUBECONFIG_PATH="$STATE/kubeconfig"
mkdir -p "$STATE"
rm -f "$KUBECONFIG_PATH"

pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

echo "[run] starting the control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) and a"
echo "      KWOK fake node, whose Pods succeed without running anything, on 127.0.0.1"
"$PY" -m tests.support.controlplane --kubeconfig-out "$KUBECONFIG_PATH" --kwok-node >"$STATE/controlplane.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 600); do [ -s "$KUBECONFIG_PATH" ] && break; sleep 0.1; done
[ -s "$KUBECONFIG_PATH" ] || { cat "$STATE/controlplane.log"; echo "[run] the control plane did not start" >&2; exit 1; }
export KUBECONFIG="$KUBECONFIG_PATH"

echo "[run] installing the CRDs"
kubectl apply -f crds/ >/dev/null
kubectl wait --for condition=established --timeout=60s crd/crontriggers.stargraph.io crd/webhooktriggers.stargraph.io crd/runs.stargraph.io >/dev/null

echo "[run] starting the operator on http://127.0.0.1:$PORT (log: $STATE/operator.log)"
.venv/bin/stargraph operator --kubeconfig "$KUBECONFIG_PATH" --host 127.0.0.1 --port "$PORT" --log-format console \
  >"$STATE/operator.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null || { tail -30 "$STATE/operator.log"; echo "[run] the operator is not ready" >&2; exit 1; }

echo "[run] applying the samples, and a CronTrigger whose Runs run as Jobs on the fake node"
kubectl apply -f crds/samples/crontrigger.yaml -f crds/samples/webhooktrigger.yaml
kubectl apply -f - <<'YAML'
apiVersion: stargraph.io/v1alpha1
kind: CronTrigger
metadata: {name: every-ten-seconds-job, namespace: default}
spec:
  schedule: "*/10 * * * * *"
  runTemplate:
    params: {greeting: hello}
    jobTemplate:
      spec:
        backoffLimit: 0
        template:
          spec:
            restartPolicy: Never
            containers:
              - {name: hello, image: example.invalid/hello, args: ["say", "$(params.greeting)"]}
            nodeSelector: {kwok.x-k8s.io/node: fake}
            tolerations: [{key: kwok.x-k8s.io/node, value: fake, effect: NoSchedule}]
YAML

cat <<MSG

stargraph is running. In another shell:

  export KUBECONFIG=$KUBECONFIG_PATH
  kubectl get stargraph                      # triggers and Runs (a Run every 10 seconds)
  kubectl get runs,jobs -l stargraph.io/trigger=every-ten-seconds-job   # Runs reaching Succeeded with their Jobs
  kubectl get events --field-selector involvedObject.name=every-ten-seconds

  # a signed GitHub-style delivery (send it twice: the second answers with the same Run)
  body='{"ref":"refs/heads/main"}'
  sig=\$(printf '%s' "\$body" | openssl dgst -sha256 -hmac change-me-to-a-long-random-string | cut -d' ' -f2)
  curl -s -XPOST http://127.0.0.1:$PORT/v1/hooks/default/github-push -H 'Content-Type: application/json' \\
       -H "X-Hub-Signature-256: sha256=\$sig" -H 'X-GitHub-Event: push' -H 'X-GitHub-Delivery: demo-1' -d "\$body"

  .venv/bin/stargraph run crontrigger/every-ten-seconds --param greeting=hi   # a manual Run

Ctrl-C here stops the operator and the control plane.
MSG
wait "${pids[1]}"

-- wrk script: every request is a distinct Alertmanager v4 body of three
-- firing alerts (new fingerprints, advancing startsAt), as a busy
-- Alertmanager would send for pods going NotReady across a cluster.
-- Usage: wrk -t1 -c32 -d15s --latency -s alerts.lua http://127.0.0.1:PORT/api/v1/alertmanager
-- A bearer token, when the receiver wants one: TOKEN=... wrk ...

local n = 0
local token = os.getenv("TOKEN")
local headers = {["Content-Type"] = "application/json"}
if token then headers["Authorization"] = "Bearer " .. token end

local alert = '{"status":"firing","labels":{"alertname":"KubePodNotReady","namespace":"team-%d",' ..
  '"pod":"api-%d-%d","severity":"warning","prometheus":"monitoring/k8s"},' ..
  '"annotations":{"description":"Pod team-%d/api-%d-%d has been in a non-ready state for longer than 15 minutes.",' ..
  '"runbook_url":"https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodnotready",' ..
  '"summary":"Pod has been in a non-ready state for more than 15 minutes."},' ..
  '"startsAt":"2026-11-20T%02d:%02d:%02d.000Z","endsAt":"0001-01-01T00:00:00Z",' ..
  '"generatorURL":"http://prometheus.example:9090/graph?g0.expr=kube_pod_status_phase&g0.tab=1",' ..
  '"fingerprint":"%016x"}'

request = function()
  n = n + 1
  local alerts = {}
  for i = 1, 3 do
    local k = n * 3 + i
    local s = math.floor(k / 10) % 86400
    alerts[i] = string.format(alert, n % 50, n, i, n % 50, n, i,
      math.floor(s / 3600), math.floor(s / 60) % 60, s % 60, k)
  end
  local body = '{"receiver":"epicenter","status":"firing","alerts":[' .. table.concat(alerts, ",") ..
    '],"groupLabels":{"namespace":"team-' .. (n % 50) .. '"},"commonLabels":{"alertname":"KubePodNotReady"},' ..
    '"commonAnnotations":{},"externalURL":"http://alertmanager.example:9093","version":"4",' ..
    '"groupKey":"{}:{namespace=\\"team-' .. (n % 50) .. '\\"}","truncatedAlerts":0}'
  return wrk.format("POST", nil, headers, body)
end

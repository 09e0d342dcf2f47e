-- Argo CD health of a stargraph trigger: CronTrigger, WebhookTrigger, or a third-party trigger kind, since the
-- operator writes the same kstatus conditions (Ready, Reconciling, Stalled) and observedGeneration for every kind.
-- Argo CD runs argocd-cm scripts without Lua's string and math libraries: only base Lua and `table` are used here.
local hs = {}

-- A non-empty string, or nil: lets `or` chains pick the first field that says something.
local function text(value)
  if type(value) == "string" and value ~= "" then
    return value
  end
  return nil
end

-- What a condition says: its message, else its reason (the operator always sets one), else `fallback`.
local function says(found, fallback)
  return text(found.message) or text(found.reason) or fallback
end

-- "1 active Run", "2 active Runs".
local function count(n, noun)
  if n == 1 then
    return "1 " .. noun
  end
  return n .. " " .. noun .. "s"
end

-- The condition of that type, or nil; a list that is not an array or entries without a type find nothing.
local function condition(status, kind)
  if type(status.conditions) ~= "table" then
    return nil
  end
  for _, found in ipairs(status.conditions) do
    if type(found) == "table" and found.type == kind then
      return found
    end
  end
  return nil
end

-- Every verdict ends here: Argo CD reads the table the chunk returns.
local function report(health, message)
  hs.status = health
  hs.message = message
  return hs
end

-- Conditions describe the spec of status.observedGeneration: older ones (an edit not yet reconciled) say nothing
-- about the current spec, however Ready they look.
local status = obj.status
local generation = type(obj.metadata) == "table" and obj.metadata.generation or nil
if type(status) ~= "table" or type(status.observedGeneration) ~= "number"
    or (type(generation) == "number" and status.observedGeneration < generation) then
  if type(generation) == "number" then
    return report("Progressing", "waiting for the operator to observe generation " .. generation)
  end
  return report("Progressing", "waiting for the operator to observe this object")
end

-- Stalled first: the spec cannot be acted on until someone changes it, whatever else the status says. Its message
-- names the offending field.
local stalled = condition(status, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  return report("Degraded", says(stalled, "stalled"))
end

local ready = condition(status, "Ready")
if ready ~= nil and ready.status == "True" then
  -- A suspended trigger is Ready (its spec is fine) but fires nothing: Argo CD's Suspended, as for a CronJob.
  local suspended = type(obj.spec) == "table" and obj.spec.suspend == true
  -- The latest activity, so the Application view shows whether the trigger fires, not only that it is valid.
  local parts = { text(ready.message) or (suspended and "suspended" or "ready") }
  if text(status.lastScheduleTime) then
    table.insert(parts, "last fire " .. status.lastScheduleTime)
  end
  if text(status.lastDeliveryTime) then
    table.insert(parts, "last delivery " .. status.lastDeliveryTime)
  end
  if type(status.active) == "table" and #status.active > 0 then
    table.insert(parts, count(#status.active, "active Run"))
  end
  if type(status.missedSchedules) == "number" and status.missedSchedules > 0 then
    table.insert(parts, count(status.missedSchedules, "missed fire"))
  end
  return report(suspended and "Suspended" or "Healthy", table.concat(parts, "; "))
end

local reconciling = condition(status, "Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  return report("Progressing", says(reconciling, "reconciling"))
end

-- Observed, yet neither Ready, Stalled nor Reconciling: a state the operator passes through, not a verdict.
if ready ~= nil then
  return report("Progressing", "not ready: " .. says(ready, "no reason given"))
end
return report("Progressing", "waiting for the Ready condition")

-- Argo CD health of a stargraph Run, read from status.phase: the one field every executor writes, the operator for
-- the Runs it executes as Jobs as well as an external executor, which may write no conditions at all.
-- Argo CD runs argocd-cm scripts without Lua's string and math libraries: only base Lua and `table` are used here.
local hs = {}

-- A non-empty string, or nil: lets `or` chains pick the first field that says something.
local function text(value)
  if type(value) == "string" and value ~= "" then
    return value
  end
  return nil
end

-- Why a failed Run failed when status.message is empty: the Stalled condition written with the phase.
local function stalled_message(status)
  if type(status.conditions) == "table" then
    for _, found in ipairs(status.conditions) do
      if type(found) == "table" and found.type == "Stalled" and found.status == "True" then
        return text(found.message) or text(found.reason)
      end
    end
  end
  return nil
end

local status = obj.status
if type(status) ~= "table" then
  status = {}
end
local phase = status.phase

-- "succeeded at <completionTime>", or the bare word when the executor recorded no time.
local function finished(word)
  if text(status.completionTime) then
    return word .. " at " .. status.completionTime
  end
  return word
end

if phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = text(status.message) or finished("succeeded")
elseif phase == "Failed" then
  hs.status = "Degraded"
  hs.message = text(status.message) or stalled_message(status) or finished("failed")
elseif phase == "Running" then
  hs.status = "Progressing"
  if text(status.startTime) then
    hs.message = "running since " .. status.startTime
  else
    hs.message = "running"
  end
elseif phase == "Pending" then
  hs.status = "Progressing"
  local job = type(status.jobRef) == "table" and text(status.jobRef.name) or nil
  if text(status.message) then
    hs.message = status.message
  elseif job then
    hs.message = "pending: Job " .. job .. " has not started"
  else
    hs.message = "pending"
  end
elseif phase == nil or phase == "" then
  -- Not started. Without a jobTemplate the operator only creates the Run; whatever executes it reports the phase.
  hs.status = "Progressing"
  if type(obj.spec) == "table" and obj.spec.jobTemplate ~= nil then
    hs.message = "waiting for the operator to start its Job"
  else
    hs.message = "waiting for its executor to report a phase"
  end
else
  -- A phase from a newer API than this script: any guess could hide a failure or hold a sync wave forever.
  hs.status = "Unknown"
  hs.message = "unknown phase " .. tostring(phase)
end
return hs

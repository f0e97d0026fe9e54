-- Health of an argoproj.io/Application for Argo CD itself (argocd-cm key
-- resource.customizations.health.argoproj.io_Application). Since Argo CD 1.8 an
-- Application has no health of its own, so the root Application's sync waves only order
-- creation: wave 1 (monitoring) and wave 2 (serving) would start before the tracking server
-- is up. With this, a child Application counts as Healthy only once it is synced and what
-- it deployed is Healthy, and the next wave waits for it.
local result = {status = "Progressing", message = "waiting for the Application to report health"}
local status = obj.status
if status == nil or status.health == nil or status.health.status == nil then
  return result
end
local health = status.health.status
local message = status.health.message or ""
if health == "Healthy" then
  if status.sync ~= nil and status.sync.status == "Synced" then
    result.status = "Healthy"
    result.message = message
  else
    result.message = "healthy but not yet synced"
  end
  return result
end
result.status = health
result.message = message
return result

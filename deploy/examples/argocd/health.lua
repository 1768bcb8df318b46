-- Argo CD health for Penpot (penpot-operator.dev): kstatus-style conditions.
local hs = { status = "Progressing", message = "waiting for the Penpot operator" }
local st = obj.status
if st == nil then return hs end
if st.observedGeneration ~= nil and obj.metadata.generation ~= nil
   and st.observedGeneration < obj.metadata.generation then
  hs.message = "spec change not yet observed"
  return hs
end
for _, c in ipairs(st.conditions or {}) do
  if c.type == "Stalled" and c.status == "True" then
    return { status = "Degraded", message = c.message }
  end
end
for _, c in ipairs(st.conditions or {}) do
  if c.type == "Ready" and c.status == "True" then
    return { status = "Healthy", message = st.message or c.message }
  end
  if c.type == "Ready" then hs.message = c.message end
end
return hs

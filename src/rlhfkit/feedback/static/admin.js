// The admin view: campaign progress, per-annotator numbers, agreement, disputed tasks, export.
// Annotator names and prompts are untrusted text: inserted with textContent only.
"use strict";
const $ = (id) => document.getElementById(id);
const fmt = (x, digits = 2) => (x === null || x === undefined ? "—" : Number(x).toFixed(digits));

async function loadCampaigns() {
  const res = await api("GET", "/api/admin/campaigns");
  const select = $("campaign");
  select.replaceChildren(...res.data.campaigns.map((c) => el("option", c, { value: c })));
  if (res.data.campaigns.length) refresh();
}

function row(cells) {
  const tr = el("tr");
  for (const c of cells) tr.append(el("td", c));
  return tr;
}

async function refresh() {
  const name = $("campaign").value;
  const res = await api("GET", `/api/admin/campaigns/${encodeURIComponent(name)}/stats`);
  if (!res.ok) { $("progress").textContent = res.data.error; return; }
  const s = res.data;
  $("progress").textContent = `${s.progress.done} of ${s.progress.wanted} judgments (${fmt(100 * s.progress.fraction, 0)}%) on ${s.tasks} tasks` +
    ` · ${s.judgments} judgments, ${s.skips} skips, ${s.gold_tasks} gold tasks`;
  $("agreement").textContent = `Krippendorff's α (nominal): ${fmt(s.krippendorff_alpha, 3)} · ` +
    `leave-one-out agreement with the majority: ${fmt(s.loo_majority_agreement, 3)}`;
  $("annotators").tBodies[0].replaceChildren(...s.annotators.map((a) => row([a.annotator, a.count, a.skips,
    fmt(a.median_seconds, 1), fmt(a.agreement_with_majority, 3), a.gold_judged ? `${fmt(a.gold_accuracy, 2)} (${a.gold_judged})` : "—", a.leases_expired])));
  $("disputed").tBodies[0].replaceChildren(...s.disputed.map((d) => row([d.task, d.prompt.slice(0, 120),
    Object.entries(d.votes).map(([k, v]) => `${k}: ${v}`).join(", "), fmt(d.disagreement, 2)])));
  updateExport();
}

function updateExport() {
  const params = new URLSearchParams({ method: $("method").value, tie_policy: $("tie-policy").value });
  $("export").href = `/api/admin/campaigns/${encodeURIComponent($("campaign").value)}/export?${params}`;
}

$("campaign").addEventListener("change", refresh);
$("refresh").addEventListener("click", refresh);
$("method").addEventListener("change", updateExport);
$("tie-policy").addEventListener("change", updateExport);
$("new-annotator").addEventListener("submit", async (e) => {
  e.preventDefault();
  const res = await api("POST", "/api/admin/annotators", { name: $("annotator-name").value,
    campaigns: $("campaign").value ? [$("campaign").value] : [], all_campaigns: $("all-campaigns").checked });
  $("new-token").textContent = res.ok ? `token for ${res.data.annotator} (shown once): ${res.data.token} — link: ${location.origin}/login#token=${res.data.token}` : res.data.error;
});
logoutButton();
loadCampaigns();

// The annotator view: show a task, collect a choice or ranking, per-criterion picks and a rationale,
// submit it with an idempotency key (the same key on every retry), then fetch the next task.
// Every shortcut is listed in the page's help (?). Model text goes into the page as textContent only.
"use strict";
const $ = (id) => document.getElementById(id);
let task = null;       // the payload of GET /api/task
let state = null;      // the annotator's picks for it
let busy = false;

function newKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function campaign() { return $("campaign").value; }

// a message that outlives the task card it was about (the next view may be "nothing left")
function notice(text) { $("notice").textContent = text; $("notice").hidden = !text; }

async function loadTask() {
  setStatus("");
  const res = await api("GET", "/api/task?campaign=" + encodeURIComponent(campaign()));
  if (res.status === 204) { task = null; $("task").hidden = true; $("done").hidden = false; $("progress").textContent = ""; return; }
  if (!res.ok) { setStatus(res.data.error || "could not load a task", true); return; }
  task = res.data;
  state = { choice: null, ranking: [], ranked: false, criteria: {}, touched: new Set(), cursor: -1,
            key: newKey(), shown: performance.now() };
  render();
}

// A response "media:NAME.gif" (rlhfkit control's segment animations) is shown as the image the app
// serves at /media/NAME.gif, from this origin (the CSP's img-src 'self'); any other text stays text.
const MEDIA = /^media:([A-Za-z0-9_-]+(?:\/[A-Za-z0-9_.-]+)*\.(?:gif|webp|png))$/;
function media(text) {
  const match = MEDIA.exec(text);
  if (!match || match[1].split("/").some((part) => part.startsWith("."))) return null;
  return el("img", null, { class: "media", src: "/media/" + match[1], alt: "animation " + match[1] });
}

function render() {
  const k = task.responses.length;
  $("done").hidden = true;
  $("task").hidden = false;
  $("progress").textContent = `${task.progress.done} done · ${task.progress.remaining} left`;
  $("guidelines-text").textContent = task.guidelines;
  const help = $("rubric-help");
  help.replaceChildren();
  for (const c of task.rubric) { help.append(el("dt", c.label), el("dd", c.help || "")); }
  $("prompt").textContent = task.prompt;
  const box = $("responses");
  box.replaceChildren();
  task.responses.forEach((text, i) => {
    const card = el("article", null, { class: "response", "data-letter": task.labels[i] });
    const title = el("h3", `Response ${task.labels[i].toUpperCase()} `);
    title.append(el("kbd", String(i + 1)));
    card.append(title, media(text) || el("div", text, { class: "text" }));
    box.append(card);
  });
  // overall choice: buttons for pairs, a ranking list for K > 2
  const choice = $("pair-choice");
  choice.replaceChildren();
  const options = k === 2 ? [["a", "A is better", "1"], ["b", "B is better", "2"]] : [];
  options.push(["tie", k === 2 ? "Tie" : "All equal", "t"], ["both_bad", k === 2 ? "Both bad" : "All bad", "b"]);
  for (const [value, label, key] of options) {
    const button = el("button", label + " ", { type: "button", "data-choice": value });
    button.append(el("kbd", key));
    button.addEventListener("click", () => choose(value));
    choice.append(button);
  }
  $("rank-choice").hidden = k === 2;
  // criteria table: a column per response plus tie
  const head = $("criteria").tHead.rows[0];
  head.replaceChildren(el("th", "Criterion"));
  for (const l of task.labels) head.append(el("th", l.toUpperCase()));
  head.append(el("th", "tie"));
  const body = $("criteria").tBodies[0];
  body.replaceChildren();
  task.rubric.forEach((c, row) => {
    const tr = el("tr", null, { "data-criterion": c.key });
    tr.append(el("td", c.label, { title: c.help || "" }));
    for (const value of [...task.labels, "tie"]) {
      const td = el("td");
      const radio = el("input", null, { type: "radio", name: "crit-" + c.key, value, "aria-label": `${c.label}: ${value}` });
      radio.addEventListener("change", () => setCriterion(row, value));
      td.append(radio);
      tr.append(td);
    }
    body.append(tr);
  });
  $("rationale").value = "";
  if (document.activeElement instanceof HTMLElement) document.activeElement.blur();  // shortcuts work again
  $("rationale-need").textContent = task.require_rationale === "always" ? "(required)" :
    task.require_rationale === "close" ? "(required for ties, both bad, or criteria that disagree)" : "(optional)";
  renderRanking();
  paint();
}

function renderRanking() {
  const list = $("ranking");
  list.replaceChildren();
  const order = state.ranked ? state.ranking : state.ranking.concat(task.labels.filter((l) => !state.ranking.includes(l)));
  for (const letter of order) {
    const i = task.labels.indexOf(letter);
    const li = el("li", `Response ${letter.toUpperCase()}: ${task.responses[i].slice(0, 80)}`, { draggable: "true", "data-letter": letter });
    li.addEventListener("dragstart", (e) => e.dataTransfer.setData("text/plain", letter));
    li.addEventListener("dragover", (e) => e.preventDefault());
    li.addEventListener("drop", (e) => {
      e.preventDefault();
      const moved = e.dataTransfer.getData("text/plain");
      const current = Array.from(list.children, (n) => n.dataset.letter).filter((l) => l !== moved);
      current.splice(current.indexOf(letter), 0, moved);
      setRanking(current, true);
    });
    list.append(li);
  }
}

function fillCriteria(value) {
  task.rubric.forEach((c) => { if (!state.touched.has(c.key)) state.criteria[c.key] = value; });
}

function choose(value) {
  state.choice = value;
  if (task.responses.length > 2 && (value === "tie" || value === "both_bad")) { state.ranking = []; state.ranked = false; }
  fillCriteria(value === "both_bad" ? "tie" : value);
  renderRanking();
  paint();
}

function setRanking(order, complete) {
  state.ranking = order;
  state.ranked = complete;
  state.choice = order.length ? order[0] : null;
  if (order.length) fillCriteria(order[0]);
  renderRanking();
  paint();
}

function pressResponse(i) {
  const letter = task.labels[i];
  if (task.responses.length === 2) { choose(letter); return; }
  const order = state.ranked ? [] : state.ranking.slice();
  if (!order.includes(letter)) order.push(letter);
  const rest = task.labels.filter((l) => !order.includes(l));
  if (rest.length === 1) order.push(rest[0]);
  setRanking(order, order.length === task.labels.length);
}

function setCriterion(row, value) {
  const key = task.rubric[row].key;
  state.criteria[key] = value;
  state.touched.add(key);
  paint();
}

function paint() {
  document.querySelectorAll("#pair-choice button").forEach((b) => b.classList.toggle("on", b.dataset.choice === state.choice));
  document.querySelectorAll(".response").forEach((card) => card.classList.toggle("picked", card.dataset.letter === state.choice));
  task.rubric.forEach((c, row) => {
    const tr = $("criteria").tBodies[0].rows[row];
    tr.classList.toggle("cursor", row === state.cursor);
    tr.querySelectorAll("input").forEach((r) => { r.checked = r.value === state.criteria[c.key]; });
  });
}

async function send(body) {
  if (busy) return;  // a double press while the first is in flight
  busy = true;
  $("submit").disabled = true;
  body.assignment = task.assignment;
  body.key = state.key;
  body.seconds = (performance.now() - state.shown) / 1000;
  try {
    for (let attempt = 0; attempt < 4; attempt++) {
      let res;
      try { res = await api("POST", "/api/judgments", body); }
      catch (e) { setStatus("network problem, retrying…", true); await new Promise((r) => setTimeout(r, 500 * (attempt + 1))); continue; }
      if (res.ok) { notice(""); await loadTask(); setStatus(res.data.status === "duplicate" ? "saved (already stored)" : "saved"); return; }
      if (res.status >= 500) { await new Promise((r) => setTimeout(r, 500 * (attempt + 1))); continue; }
      if (res.data.code === "lease_expired") { await loadTask(); notice(res.data.error); return; }
      setStatus(res.data.error || "not saved", true);
      if (/rationale/.test(res.data.error || "")) $("rationale").focus();
      return;
    }
    setStatus("not saved: the server did not answer; press Enter to try again", true);
  } finally {
    busy = false;
    $("submit").disabled = false;
  }
}

function submit() {
  if (!task) return;
  const k = task.responses.length;
  if (state.choice === null) { setStatus(k === 2 ? "pick A, B, tie or both bad first (1, 2, t, b)" : "rank the responses first (press their numbers, best first)", true); return; }
  const body = { criteria: state.criteria, rationale: $("rationale").value };
  if (state.choice === "tie" || state.choice === "both_bad") body.outcome = state.choice;
  else if (k === 2) body.outcome = state.choice;
  else if (!state.ranked) { setStatus("finish the ranking: every response needs a place", true); return; }
  else { body.outcome = state.ranking[0]; body.ranking = state.ranking; }
  send(body);
}

function skip() { if (task) send({ outcome: "skip" }); }

document.addEventListener("keydown", (e) => {
  const typing = e.target instanceof HTMLTextAreaElement || e.target instanceof HTMLInputElement && e.target.type !== "radio";
  if (typing) {
    if (e.key === "Escape") e.target.blur();
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); submit(); }
    return;
  }
  if (e.key === "?") { $("help").hidden = !$("help").hidden; return; }
  if (!task || e.ctrlKey || e.metaKey || e.altKey) return;
  const k = task.responses.length;
  const digit = /^[1-9]$/.test(e.key) ? Number(e.key) - 1 : -1;
  if (digit >= 0 && digit < k) {
    if (state.cursor >= 0) setCriterion(state.cursor, task.labels[digit]); else pressResponse(digit);
  } else if (e.key === "t") {
    if (state.cursor >= 0) setCriterion(state.cursor, "tie"); else choose("tie");
  } else if (e.key === "b") { choose("both_bad");
  } else if (e.key === "s") { skip();
  } else if (e.key === "c") { state.cursor = (state.cursor + 1) % task.rubric.length; paint();
  } else if (e.key === "Escape") { state.cursor = -1; paint();
  } else if (e.key === "r") { e.preventDefault(); $("rationale").focus();
  } else if (e.key === "Backspace" && k > 2) { setRanking(state.ranking.slice(0, -1), false);
  } else if (e.key === "Enter") { e.preventDefault(); submit();
  } else { return; }
  e.preventDefault();
});

$("submit").addEventListener("click", submit);
$("skip").addEventListener("click", skip);
$("help-toggle").addEventListener("click", () => { $("help").hidden = !$("help").hidden; });
$("campaign").addEventListener("change", loadTask);
logoutButton();
if (campaign()) loadTask(); else { $("done").hidden = false; $("done").textContent = "There is no campaign yet."; }

"use strict";
const $ = (id) => document.getElementById(id);
let state = null, timer = null, chain = Promise.resolve(), lost = false;
// the per-launch token came in the URL printed at start-up; the server wants it back on every call
const token = new URLSearchParams(location.search).get("token") || "";
// this tab's id: the latest tab opened owns the session, an older one is told so (409) instead of
// approving translations of another tab's sentence (getRandomValues also works off localhost)
const tab = Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, "0")).join("");

// requests go one after another, so the server sees the person's edits in the order they were made
function call(action, body) {
  chain = chain.then(() => send(action, body)).catch((error) => { $("error").textContent = String(error); });
  return chain;
}

async function send(action, body) {
  if (lost) return;
  const response = await fetch("/api/" + action, {method: action === "state" ? "GET" : "POST",
    headers: {"Content-Type": "application/json", "X-BigModel-Token": token, "X-BigModel-Tab": tab},
    body: action === "state" ? undefined : JSON.stringify(body || {})});
  const payload = await response.json();
  if (response.status === 409) {  // another tab took the session over: stop sending anything
    lost = true;
    document.querySelectorAll("button, input, textarea, select").forEach((element) => { element.disabled = true; });
  }
  if (!response.ok) { $("error").textContent = payload.error; return; }
  $("error").textContent = "";
  draw(payload);
}

function flushTyping() {  // a correction still waiting for its pause goes out before anything else
  if (timer !== null) { clearTimeout(timer); timer = null; call("type", {text: $("typed").value}); }
}

function adaptation() {  // with --adapt: how many approvals the model learned from, and when
  const a = state.adaptation;
  if (!a) return "";
  if (a.error) return ` · adaptation stopped: ${a.error}`;
  const when = a.last_update ? `, last update ${new Date(a.last_update).toLocaleTimeString()}` : "";
  return ` · model learned from ${a.learned} approval(s)${when}` + (a.queued ? ` (${a.queued} learning)` : "");
}

function drawLanguages() {  // a multilingual model: the languages it writes, the one chosen, and the route
  const languages = state.languages, select = $("target-lang");
  $("direction").hidden = languages.targets.length === 0;
  if (select.options.length !== languages.targets.length) {
    select.replaceChildren(...languages.targets.map((code) => new Option(code, code)));
  }
  if (languages.target_lang !== null) select.value = languages.target_lang;
  $("route").textContent = languages.route || "";
}

function draw(next) {
  state = next;
  drawLanguages();
  const session = state.session, proposal = $("proposal"), alternatives = $("alternatives");
  proposal.replaceChildren(); alternatives.replaceChildren();
  if (!session) {
    $("status").textContent = `${state.saved} saved to ${state.log}` + (state.queued ? "" : " · no more queued sentences") +
      adaptation();
    return;
  }
  if (document.activeElement !== $("source")) $("source").value = session.source;
  if (document.activeElement !== $("typed")) $("typed").value = session.typed;
  session.words.forEach((word, i) => {
    if (i === session.accepted) proposal.append(cursor());
    const span = document.createElement("span");
    span.className = "word" + (word.accepted ? " accepted" : "") +
      (word.probability !== null && word.probability < state.threshold && !word.accepted ? " unsure" : "");
    span.textContent = word.text;
    if (word.probability !== null) span.title = `p = ${word.probability.toFixed(3)}`;
    span.dataset.index = i;
    span.addEventListener("click", () => { flushTyping(); $("typed").value = ""; call("accept", {count: i + 1}); });
    proposal.append(span, " ");
  });
  if (session.accepted >= session.words.length) proposal.append(cursor());
  session.alternatives.slice(1).forEach((alternative, i) => {
    const item = document.createElement("li");
    item.textContent = alternative.text;
    item.addEventListener("click", () => call("choose", {index: i + 1}));
    alternatives.append(item);
  });
  $("status").textContent = `${state.ms} ms · ${session.completions} completion(s) for this sentence · ` +
    `${state.saved} saved to ${state.log} · ${state.queued} queued` + adaptation();
}

function cursor() {
  const mark = document.createElement("span");
  mark.className = "cursor"; mark.textContent = "|";
  return mark;
}

$("typed").addEventListener("input", () => {
  clearTimeout(timer);  // wait for a pause in typing: one completion per burst of keys
  timer = setTimeout(() => { timer = null; call("type", {text: $("typed").value}); }, 80);
});
$("typed").addEventListener("keydown", (event) => {
  if (event.key === "Enter") $("approve").click();
  if (event.key === "Tab" && state && state.session) { event.preventDefault(); acceptNextWord(); }
});

function acceptNextWord() {  // Tab: the word being typed, or the next proposed word, becomes accepted
  flushTyping();
  $("typed").value = "";
  chain = chain.then(() => {
    const session = state.session, typed = session.typed.trim() ? session.typed.trim().split(/\s+/) : [];
    const count = session.accepted + typed.length + (typed.length === 0 || /\s$/.test(session.typed) ? 1 : 0);
    return send("accept", {count: Math.min(count, session.words.length)});
  });
}
$("translate").addEventListener("click", () => { $("typed").value = ""; call("start", {source: $("source").value}); });
$("target-lang").addEventListener("change", () => { flushTyping(); $("typed").value = "";
  call("language", {target_lang: $("target-lang").value}); });
$("next").addEventListener("click", () => { $("typed").value = ""; call("next"); });
$("approve").addEventListener("click", () => { flushTyping(); $("typed").value = ""; call("approve", {}); });
$("approve-accepted").addEventListener("click", () => { flushTyping(); $("typed").value = ""; call("approve", {prefix_only: true}); });

call("claim").then(() => { if (state && !state.session && state.queued) call("next"); });

// Log in with a token typed in, or taken from the link's #token=... fragment (never sent in a URL).
// A link of someone else, opened while logged in, asks before it replaces the current identity
// (the server answers 409 "logged_in_as" unless the request says replace).
"use strict";
async function login(token, replace) {
  const res = await api("POST", "/api/login", { token, replace: !!replace });
  if (res.ok) { history.replaceState(null, "", "/login"); location.href = res.data.next; return; }
  if (res.data && res.data.code === "logged_in_as") {
    document.getElementById("switch-text").textContent = res.data.error + ". Log in as the link's owner?";
    document.getElementById("switch").hidden = false;
    document.getElementById("switch-yes").onclick = () => login(token, true);
    document.getElementById("switch-no").onclick = () => { history.replaceState(null, "", "/login"); location.href = document.getElementById("current").dataset.next; };
    return;
  }
  setStatus(res.data && res.data.error || "login failed", true);
}
document.getElementById("login").addEventListener("submit", (e) => {
  e.preventDefault();
  login(document.getElementById("token").value.trim(), false);
});
const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");
if (fromLink) login(fromLink, false);

// Log in with a token typed in, or taken from the link's #token=... fragment (never sent in a URL).
"use strict";
async function login(token) {
  const res = await api("POST", "/api/login", { token });
  if (res.ok) { history.replaceState(null, "", "/login"); location.href = res.data.next; }
  else setStatus(res.data && res.data.error || "login failed", true);
}
document.getElementById("login").addEventListener("submit", (e) => {
  e.preventDefault();
  login(document.getElementById("token").value.trim());
});
const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");
if (fromLink) login(fromLink);

// A tiny client-side router: every path is served index.html by the proxy's SPA fallback, and this script
// renders the page for the path in the address bar.
const pages = {
  "/": () => "<h1>Hello from Ferry</h1><p>This page was deployed by Ferry.</p>",
  "/about": () => "<h1>About</h1><p>Client-side route rendered in the browser.</p>",
};

function render() {
  const path = location.pathname.replace(/\/+$/, "") || "/";
  const page = pages[path] || (() =>
    path.startsWith("/docs/")
      ? `<h1>Docs</h1><p>Section: ${path.slice(6).replace(/[<>&]/g, "")}</p>`
      : "<h1>Not found</h1><p>No route for this path.</p>");
  document.getElementById("app").innerHTML = page();
}

document.addEventListener("click", (e) => {
  const a = e.target.closest("a[data-link]");
  if (!a) return;
  e.preventDefault();
  history.pushState(null, "", a.getAttribute("href"));
  render();
});
window.addEventListener("popstate", render);
render();

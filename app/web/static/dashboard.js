// Live updates for the dashboard: Server-Sent Events from /deployments/<id>/events and
// /projects/<name>/events. No build step and no framework; pages work without it (reload to update).
"use strict";

(function () {
  var LABELS = {
    queued: "Queued", building: "Building", ready: "Ready", failed: "Failed",
    error: "Error", canceled: "Canceled", inactive: "Inactive"
  };

  function setBadge(el, status) {
    if (!el || el.dataset.status === status) return;
    el.dataset.status = status;
    el.className = "badge badge-" + status;
    el.textContent = LABELS[status] || status;
  }

  function setLink(el, url) {
    if (!el) return;
    if (!url) { el.hidden = true; return; }
    var a = el.querySelector("a");
    if (a) { a.href = url; a.textContent = url; }
    el.hidden = false;
  }

  function showConnection(el, ok) {
    if (!el) return;
    el.textContent = ok ? "Live" : "Reconnecting…";
    el.className = ok ? "live live-on" : "live live-off";
  }

  // refresher returns a function that fetches the server-rendered fragment at url() and hands it to apply as a
  // DocumentFragment. The server draws these parts (which buttons a status allows, where production points), so
  // this script never draws them a second way. One request runs at a time; a call meanwhile runs one more after.
  function refresher(url, apply) {
    var busy = false, again = false;
    function run() {
      if (busy) { again = true; return; }
      busy = true;
      fetch(url(), { credentials: "same-origin", headers: { Accept: "text/html" } }).then(function (r) {
        return r.ok ? r.text() : null;
      }).then(function (html) {
        if (html === null) return;
        var t = document.createElement("template");
        t.innerHTML = html;
        apply(t.content);
      }).catch(function () { /* the next event tries again */ }).then(function () {
        busy = false;
        if (again) { again = false; run(); }
      });
    }
    return run;
  }

  // swap replaces the page's element #id with the fragment's.
  function swap(frag, id) {
    var now = document.getElementById(id), next = frag.querySelector("#" + id);
    if (now && next) now.replaceWith(next);
  }

  // The deployment page: status, URLs, error and the build log.
  function deploymentPage(root) {
    var log = document.getElementById("build-log");
    var empty = document.getElementById("build-log-empty");
    var badge = document.getElementById("deployment-status");
    var conn = document.getElementById("live");
    var after = root.dataset.after || "0";
    var refresh = refresher(function () { return root.dataset.actions; }, function (frag) {
      swap(frag, "deployment-production");
      swap(frag, "deployment-actions");
    });
    var es = new EventSource(root.dataset.events + "?after=" + encodeURIComponent(after));
    es.onopen = function () { showConnection(conn, true); };
    es.onerror = function () { showConnection(conn, false); };
    es.addEventListener("log", function (e) {
      var l = JSON.parse(e.data);
      if (log.querySelector('[data-seq="' + l.seq + '"]')) return; // already rendered
      var stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 24;
      var li = document.createElement("li");
      li.dataset.seq = l.seq;
      if (l.step) {
        var step = document.createElement("span");
        step.className = "log-step";
        step.textContent = l.step;
        li.appendChild(step);
      }
      var text = document.createElement("span");
      text.className = "log-line";
      text.textContent = l.line;
      li.appendChild(text);
      log.appendChild(li);
      if (empty) empty.hidden = true;
      if (stick) log.scrollTop = log.scrollHeight;
    });
    es.addEventListener("status", function (e) {
      var s = JSON.parse(e.data);
      setBadge(badge, s.status);
      setLink(document.getElementById("deployment-url"), s.url);
      setLink(document.getElementById("deployment-alias-url"), s.alias_url);
      var err = document.getElementById("deployment-error");
      if (err) { err.textContent = s.error || ""; err.hidden = !s.error; }
      document.querySelectorAll("[data-when]").forEach(function (el) {
        var show = el.dataset.when.split(" ").indexOf(s.status) >= 0;
        el.hidden = !show;
      });
      if (root.dataset.actions) refresh();
    });
    // Another deployment of the project finished or production moved: this one's tag and buttons may change.
    es.addEventListener("project", function () { if (root.dataset.actions) refresh(); });
    es.addEventListener("deleted", function () {
      es.close();
      showConnection(conn, false);
      if (conn) conn.textContent = "This deployment was deleted.";
    });
  }

  // The project page: the deployments table, rows added and badges updated as builds move.
  function projectPage(root) {
    var conn = document.getElementById("live");
    var tbody = document.getElementById("deployments-body");
    var es = new EventSource(root.dataset.events);
    // The production line, the aliases and what each row offers come from the server (/projects/<name>/live,
    // for the same page of deployments as this one).
    var refresh = refresher(function () { return root.dataset.live + location.search; }, function (frag) {
      swap(frag, "production");
      swap(frag, "aliases");
      var first = !new URLSearchParams(location.search).get("cursor"), prev = null;
      frag.querySelectorAll("#live-rows > tr").forEach(function (tr) {
        var row = tbody.querySelector('tr[data-id="' + tr.dataset.id + '"]');
        if (row) {
          // The badge (second cell) stays the stream's; the other cells, such as the production tag and the
          // actions, follow the server, which also redraws a row this script added in its own words.
          var fresh = Array.from(tr.cells), cur = Array.from(row.cells);
          if (fresh.length === cur.length) {
            fresh.forEach(function (td, i) { if (i !== 1) row.replaceChild(td, cur[i]); });
          }
          prev = row;
        } else if (first) {
          tbody.insertBefore(tr, prev ? prev.nextSibling : tbody.firstChild);
          prev = tr;
        }
      });
      if (tbody.rows.length) {
        var none = document.getElementById("no-deployments");
        if (none) none.hidden = true;
        document.getElementById("deployments").hidden = false;
      }
    });
    es.addEventListener("project", function () { if (root.dataset.live) refresh(); });
    es.onopen = function () { showConnection(conn, true); };
    es.onerror = function () { showConnection(conn, false); };
    es.addEventListener("deployment", function (e) {
      var d = JSON.parse(e.data);
      var row = tbody.querySelector('tr[data-id="' + d.id + '"]');
      if (!row) {
        row = newRow(d);
        tbody.insertBefore(row, tbody.firstChild);
        var none = document.getElementById("no-deployments");
        if (none) none.hidden = true;
        document.getElementById("deployments").hidden = false;
      }
      setBadge(row.querySelector(".badge"), d.status);
      var link = row.querySelector(".dep-url");
      if (link && d.url) { link.href = d.url; link.textContent = "Visit"; link.hidden = false; }
    });
    es.addEventListener("deleted", function (e) {
      var d = JSON.parse(e.data);
      var row = tbody.querySelector('tr[data-id="' + d.id + '"]');
      if (row) row.remove();
    });
  }

  function cell(content) {
    var td = document.createElement("td");
    if (typeof content === "string") td.textContent = content; else if (content) td.appendChild(content);
    return td;
  }

  function newRow(d) {
    var tr = document.createElement("tr");
    tr.dataset.id = d.id;
    var a = document.createElement("a");
    a.href = "/deployments/" + d.id;
    a.textContent = d.id;
    var badge = document.createElement("span");
    badge.setAttribute("role", "status");
    var what = d.pr_number ? "PR #" + d.pr_number : d.ref;
    var visit = document.createElement("a");
    visit.className = "dep-url";
    visit.hidden = true;
    tr.appendChild(cell(a));
    tr.appendChild(cell(badge));
    tr.appendChild(cell(d.kind));
    tr.appendChild(cell(what + " @ " + (d.commit_sha || "").slice(0, 7)));
    tr.appendChild(cell(new Date(d.created_at).toLocaleString()));
    tr.appendChild(cell(visit));
    setBadge(badge, d.status);
    return tr;
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (!window.EventSource) return;
    var dep = document.getElementById("deployment");
    if (dep && dep.dataset.events) deploymentPage(dep);
    var proj = document.getElementById("project");
    if (proj && proj.dataset.events) projectPage(proj);
  });
})();

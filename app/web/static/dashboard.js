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
    // "Live updates on", not "Live": a green "Live" read as "the site is live" (issue 18).
    el.textContent = ok ? "Live updates on" : "Reconnecting…";
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


  // ANSI colours (SGR sequences) in build output become spans with classes (the CSP allows no inline
  // styles); other escape sequences are dropped. Go's ansi.Strip does the same for plain text.
  var ESC_RE = /\x1b(?:\[([0-9;?]*)([@-~])|\][^\x07\x1b]*(?:\x07|\x1b\\)?|.?)/g;
  function ansiInto(el, text) {
    if (text.indexOf("\x1b") < 0) { el.textContent = text; return; }
    el.textContent = "";
    var st = { fg: "", bg: "", b: false, d: false, i: false, u: false }, last = 0, m;
    function put(chunk) {
      if (!chunk) return;
      var cls = [];
      if (st.fg) cls.push("ansi-" + st.fg);
      if (st.bg) cls.push("ansi-bg-" + st.bg);
      if (st.b) cls.push("ansi-bold");
      if (st.d) cls.push("ansi-dim");
      if (st.i) cls.push("ansi-italic");
      if (st.u) cls.push("ansi-underline");
      if (!cls.length) { el.appendChild(document.createTextNode(chunk)); return; }
      var span = document.createElement("span");
      span.className = cls.join(" ");
      span.textContent = chunk;
      el.appendChild(span);
    }
    var NAMES = ["black", "red", "green", "yellow", "blue", "magenta", "cyan", "white"];
    function color(n) { return n < 8 ? NAMES[n] : n < 16 ? "bright-" + NAMES[n - 8] : n >= 232 ? (n < 244 ? "bright-black" : "white") : ""; }
    ESC_RE.lastIndex = 0;
    while ((m = ESC_RE.exec(text)) !== null) {
      put(text.slice(last, m.index));
      last = ESC_RE.lastIndex;
      if (m[2] !== "m") continue;
      var codes = (m[1] || "0").split(";").map(function (c) { return parseInt(c || "0", 10); });
      for (var k = 0; k < codes.length; k++) {
        var c = codes[k];
        if (c === 0) st = { fg: "", bg: "", b: false, d: false, i: false, u: false };
        else if (c === 1) st.b = true;
        else if (c === 2) st.d = true;
        else if (c === 3) st.i = true;
        else if (c === 4) st.u = true;
        else if (c === 22) { st.b = false; st.d = false; }
        else if (c === 23) st.i = false;
        else if (c === 24) st.u = false;
        else if (c >= 30 && c <= 37) st.fg = NAMES[c - 30];
        else if (c === 39) st.fg = "";
        else if (c >= 40 && c <= 47) st.bg = NAMES[c - 40];
        else if (c === 49) st.bg = "";
        else if (c >= 90 && c <= 97) st.fg = "bright-" + NAMES[c - 90];
        else if (c >= 100 && c <= 107) st.bg = "bright-" + NAMES[c - 100];
        else if ((c === 38 || c === 48) && codes[k + 1] === 5) {
          var name = color(codes[k + 2]);
          if (c === 38) st.fg = name; else st.bg = name;
          k += 2;
        } else if ((c === 38 || c === 48) && codes[k + 1] === 2) k += 4; // true colour: left as it is
      }
    }
    put(text.slice(last));
  }

  // The confirmation before a rollback or promote: a form with data-confirm submits only once the dialog
  // says so. Without this script the form submits at once, as before.
  function confirmations() {
    var dlg = document.getElementById("confirm");
    if (!dlg || !dlg.showModal) return;
    var pending = null;
    document.addEventListener("submit", function (e) {
      var f = e.target;
      if (!f.dataset || !f.dataset.confirm || f.dataset.confirmed === "1") return;
      e.preventDefault();
      pending = f;
      document.getElementById("confirm-text").textContent = f.dataset.confirm;
      document.getElementById("confirm-ok").textContent = f.dataset.confirmButton || "Confirm";
      dlg.returnValue = "";
      dlg.showModal();
    }, true);
    dlg.addEventListener("close", function () {
      var f = pending;
      pending = null;
      if (!f || dlg.returnValue !== "ok") return;
      f.dataset.confirmed = "1";
      if (f.requestSubmit) f.requestSubmit(); else f.submit();
    });
  }

  // The build log: colours, search, follow, and opening at the error line.
  function logView(log, building) {
    var follow = document.getElementById("log-follow");
    var search = document.getElementById("log-search");
    var count = document.getElementById("log-matches");
    // scrollTo scrolls the log (not the page) so that li sits near its top.
    function scrollTo(li) {
      log.scrollTop += li.getBoundingClientRect().top - log.getBoundingClientRect().top - 48;
    }
    function open() {
      log.querySelectorAll(".log-line").forEach(function (el) { ansiInto(el, el.textContent); });
      fold();
    }
    // fold shows the log as it opens: at the error when there is one, else at the end while following.
    function fold() {
      var err = document.getElementById("log-error");
      if (err) {
        // Open at the error: the steps that passed fold away, the failed one scrolls into view, highlighted.
        log.querySelectorAll("details.log-group").forEach(function (d) { if (!d.classList.contains("log-group-failed")) d.open = false; });
        if (follow) follow.checked = false;
        err.classList.add("log-err-focus");
        scrollTo(err);
      } else if (building || (follow && follow.checked)) {
        log.scrollTop = log.scrollHeight;
      }
    }
    open();
    var jump = document.getElementById("error-jump");
    if (jump) jump.addEventListener("click", function (e) {
      var at = document.getElementById("log-error");
      if (!at) return;
      e.preventDefault();
      var d = at.closest("details");
      if (d) d.open = true;
      scrollTo(at);
      log.scrollIntoView({ block: "start" });
      at.classList.add("log-err-focus");
    });
    var hits = [], at = -1;
    function find() {
      var q = search.value.trim().toLowerCase();
      hits = [];
      at = -1;
      log.querySelectorAll("li").forEach(function (li) {
        var hit = q !== "" && li.textContent.toLowerCase().indexOf(q) >= 0;
        li.classList.toggle("log-hit", hit);
        if (hit) hits.push(li);
      });
      count.textContent = q === "" ? "" : hits.length === 1 ? "1 match" : hits.length + " matches";
      if (q === "") { fold(); return; } // a cleared search puts the log back as it opened
      next();
    }
    function next() {
      if (!hits.length) return;
      at = (at + 1) % hits.length;
      var li = hits[at], d = li.closest("details");
      if (d) d.open = true;
      if (follow) follow.checked = false;
      scrollTo(li);
    }
    if (search) {
      search.addEventListener("input", find);
      search.addEventListener("keydown", function (e) { if (e.key === "Enter") { e.preventDefault(); next(); } });
    }
    // Scrolling up stops following; scrolling to the end follows again.
    log.addEventListener("scroll", function () {
      if (!follow) return;
      follow.checked = log.scrollTop + log.clientHeight >= log.scrollHeight - 24;
    });
    return {
      open: open,
      add: function (l) {
        var groups = log.querySelectorAll("details.log-group"), g = groups[groups.length - 1], step = l.step || "ferry";
        if (!g || g.dataset.step !== step) {
          g = document.createElement("details");
          g.className = "log-group";
          g.dataset.step = step;
          g.open = true;
          var sum = document.createElement("summary"), name = document.createElement("span");
          name.className = "log-step";
          name.textContent = step;
          sum.appendChild(name);
          g.appendChild(sum);
          g.appendChild(document.createElement("ol"));
          log.appendChild(g);
        }
        var li = document.createElement("li");
        li.dataset.seq = l.seq;
        var t = document.createElement("time");
        if (l.time) { t.dateTime = l.time; t.textContent = new Date(l.time).toISOString().slice(11, 19); }
        li.appendChild(t);
        var text = document.createElement("span");
        text.className = "log-line";
        ansiInto(text, l.line);
        li.appendChild(text);
        g.querySelector("ol").appendChild(li);
        if (follow && follow.checked) log.scrollTop = log.scrollHeight;
      }
    };
  }

  // The deployment page: status, URLs, error and the build log.
  function deploymentPage(root) {
    var log = document.getElementById("build-log");
    var empty = document.getElementById("build-log-empty");
    var badge = document.getElementById("deployment-status");
    var conn = document.getElementById("live");
    var after = root.dataset.after || "0";
    var view = logView(log, ["queued", "building"].indexOf(badge ? badge.dataset.status : "") >= 0);
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
      view.add(l);
      if (empty) empty.hidden = true;
    });
    es.addEventListener("status", function (e) {
      var s = JSON.parse(e.data);
      setBadge(badge, s.status);
      setLink(document.getElementById("deployment-url"), s.url);
      setLink(document.getElementById("deployment-alias-url"), s.alias_url);
      var err = document.getElementById("deployment-error");
      if (err) {
        var txt = err.querySelector(".build-error-text") || err;
        txt.textContent = s.error || "";
        err.hidden = !s.error;
      }
      document.querySelectorAll("[data-when]").forEach(function (el) {
        var show = el.dataset.when.split(" ").indexOf(s.status) >= 0;
        el.hidden = !show;
      });
      if (root.dataset.actions) refresh();
      // A build that just failed: the server marks the error lines, so its log is drawn again, opened there.
      if (s.status === "failed" && !document.getElementById("log-error")) refetchLog();
    });
    var refetchLog = refresher(function () { return location.pathname; }, function (frag) {
      var next = frag.querySelector("#build-log");
      if (!next) return;
      log.textContent = "";
      while (next.firstChild) log.appendChild(next.firstChild);
      view.open();
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

  // Copy buttons: data-copy names the element whose text goes to the clipboard.
  function copyButtons() {
    document.querySelectorAll("[data-copy]").forEach(function (btn) {
      btn.addEventListener("click", function () {
        var el = document.getElementById(btn.dataset.copy);
        if (!el) return;
        var done = function () { btn.textContent = "Copied"; setTimeout(function () { btn.textContent = "Copy"; }, 2000); };
        if (navigator.clipboard && navigator.clipboard.writeText) {
          navigator.clipboard.writeText(el.textContent.trim()).then(done, function () { selectText(el); });
        } else {
          selectText(el);
        }
      });
    });
  }
  function selectText(el) {
    var r = document.createRange();
    r.selectNodeContents(el);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(r);
  }

  document.addEventListener("DOMContentLoaded", function () {
    confirmations();
    copyButtons();
    if (!window.EventSource) {
      var l = document.getElementById("build-log");
      if (l) logView(l, false);
      return;
    }
    var dep = document.getElementById("deployment");
    if (dep && dep.dataset.events) deploymentPage(dep);
    var proj = document.getElementById("project");
    if (proj && proj.dataset.events) projectPage(proj);
  });
})();

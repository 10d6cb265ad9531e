/*
 * Progress in the browser, no account (issue 18): "Mark as done" on every topic, lab and
 * notebook page; done / total, a bar and the next topic on chapter indexes and paths;
 * "Continue where you left off" on the home page; self-checks answered before the reveal,
 * scored; export, import and reset on the "Your progress" page (docs/progress.md).
 *
 * Everything is kept in localStorage under one versioned key; nothing is sent anywhere
 * (export is a Blob URL made in the page). The questions stay plain Markdown: a question
 * is known by a hash of its text as the page shows it, never by text in this file.
 * The first page is set up by a direct call at the end of this file; Material's instant
 * navigation swaps pages without a reload, and setup() runs on every document$ emission to
 * add the controls to the new page (the first page's emission finds it done: bfReady).
 *
 * Which page is which comes from its URL under the site root: "" is home, "paths/…/" a
 * learning path, "<chapter>/" a chapter index, "<chapter>/<page>/" a topic, lab or notebook.
 */
(function () {
  "use strict";
  var KEY = "bf-progress-v1";
  var ROOT = new URL("../../", document.currentScript.src).pathname; // assets/javascripts/
  var PAGE = /^[\w.-]+\/[\w.-]+\/$/;
  var state = load();
  var n = 0; // ids for the elements of one page

  function empty() { return { v: 1, done: {}, last: null, checks: {} }; }
  function isMap(o, ok) {
    return !!o && typeof o === "object" && !Array.isArray(o) &&
      Object.keys(o).every(function (k) { return ok(o[k], k); });
  }
  function isPage(p) { return typeof p === "string" && PAGE.test(p); }
  // Why a value is not a progress file, or "" when it is one.
  function problem(s) {
    if (!isMap(s, function () { return true; })) return "it is not a JSON object";
    if (s.v !== 1) return "it has no \"v\": 1 (a progress file of this site)";
    if (!isMap(s.done, function (d, k) { return isPage(k) && typeof d === "string" && !isNaN(Date.parse(d)); }))
      return "\"done\" is not a map of pages to dates";
    if (s.last != null && !isPage(s.last)) return "\"last\" is not a page";
    if (!isMap(s.checks, function (c, k) {
      return isPage(k) && isMap(c, function (r) { return r === "right" || r === "wrong"; });
    })) return "\"checks\" is not a map of pages to right/wrong answers";
    return "";
  }
  function load() {
    try {
      var s = JSON.parse(localStorage.getItem(KEY));
      if (s && !problem(s)) return s;
    } catch (e) { /* unreadable or no storage: start empty */ }
    return empty();
  }
  function store() {
    try { localStorage.setItem(KEY, JSON.stringify(state)); } catch (e) { /* kept for this page only */ }
  }
  function save() { store(); update(); }

  function pathOf(href) {
    var u = new URL(href, location.href);
    if (u.origin !== location.origin || u.pathname.indexOf(ROOT) !== 0) return null;
    return decodeURI(u.pathname.slice(ROOT.length));
  }
  function isTopic(p) { return isPage(p) && p.indexOf("paths/") !== 0; }

  function el(tag, props, kids) {
    var e = document.createElement(tag);
    Object.keys(props || {}).forEach(function (k) {
      if (k in e && k !== "role") e[k] = props[k]; else e.setAttribute(k, props[k]);
    });
    (kids || []).forEach(function (c) { e.append(c); });
    return e;
  }
  function button(text, cls, onclick) {
    return el("button", { type: "button", className: "bf-btn " + (cls || ""), textContent: text, onclick: onclick });
  }
  function say(msg) {
    var live = document.querySelector(".bf-live");
    if (live) live.textContent = msg + (live.textContent === msg ? "\u00a0" : "");
  }
  function titles() {
    var t = {};
    document.querySelectorAll("a.md-nav__link[href]").forEach(function (a) {
      var p = pathOf(a.href);
      if (p !== null && !t[p]) t[p] = a.textContent.trim();
    });
    return t;
  }
  function score(pages) {
    var right = 0, answered = 0;
    pages.forEach(function (p) {
      var c = state.checks[p] || {};
      Object.keys(c).forEach(function (q) { answered++; right += c[q] === "right"; });
    });
    return answered ? "Self-checks: " + right + " right of " + answered + " answered" : "";
  }
  // "3 of 8 topics done", a bar, the next topic not done and the self-check score.
  function summary(pages, names, what) {
    var done = pages.filter(function (p) { return state.done[p]; });
    var next = pages.filter(function (p) { return !state.done[p]; })[0];
    var id = "bf-c" + (++n);
    var box = el("div", { className: "bf-box bf-summary" }, [
      el("p", {}, [el("span", { id: id, textContent: done.length + " of " + pages.length + " " + what + " done" }),
        el("progress", { className: "bf-meter", max: pages.length, value: done.length, "aria-labelledby": id })])
    ]);
    if (next) box.append(el("p", {}, ["Next: ", el("a", { href: ROOT + next, textContent: names[next] || next })]));
    var s = score(pages);
    if (s) box.append(el("p", { textContent: s }));
    return box;
  }
  function date(iso) { return new Date(iso).toLocaleDateString(undefined, { dateStyle: "medium" }); }

  // A topic page: the toggle (top and bottom), its date, the page's score, a live region.
  function topic(article, page, h1) {
    state.last = page;
    store();
    var bar = el("div", { className: "bf-bar" }, [
      button("Mark as done", "bf-done"),
      el("span", { className: "bf-when" }), el("span", { className: "bf-score" }),
      el("span", { className: "bf-live bf-sr", "aria-live": "polite" })
    ]);
    (h1.closest(".jupyter-wrapper .jp-Cell") || h1).after(bar);
    article.append(el("div", { className: "bf-bar bf-bar--end" }, [button("Mark as done", "bf-done")]));
    article.querySelectorAll(".bf-done").forEach(function (b) {
      b.onclick = function () {
        if (state.done[page]) delete state.done[page]; else state.done[page] = new Date().toISOString();
        save();
        say(state.done[page] ? "Marked as done" : "Marked as not done");
      };
    });
    article.querySelectorAll("details.question").forEach(function (d) { check(d, page); });
  }

  // A self-check: write an answer first, reveal, then say whether it was right.
  function hash(s) {
    for (var h = 5381, i = 0; i < s.length; i++) h = (h * 33 ^ s.charCodeAt(i)) >>> 0;
    return h.toString(36);
  }
  function check(d, page) {
    var q = d.querySelector("summary");
    if (!q) return;
    var id = "bf-q" + (++n), key = hash(q.textContent.trim());
    q.id = q.id || id + "-q";
    var show = button("Show the answer", "", function () { d.open = true; q.focus(); });
    var grade = el("div", { className: "bf-grade", role: "group", "aria-label": "How did your answer do?" }, [
      button("I got it right", "bf-right"), " ", button("I got it wrong", "bf-wrong")
    ]);
    grade.querySelectorAll("button").forEach(function (b, i) {
      b.dataset.q = key;
      b.dataset.r = i ? "wrong" : "right";
      b.onclick = function () {
        var c = state.checks[page] = state.checks[page] || {}, r = b.dataset.r;
        if (c[key] === r) delete c[key]; else c[key] = r;
        if (!Object.keys(c).length) delete state.checks[page];
        save();
        say(document.querySelector(".bf-score").textContent || "Answer cleared");
      };
    });
    var box = el("div", { className: "bf-check" }, [
      el("label", { htmlFor: id }, ["Your answer ", el("small", { textContent: "(write it before you look; not graded, not saved)" })]),
      el("textarea", { id: id, rows: 2, "aria-describedby": q.id }),
      show, grade
    ]);
    function toggled() { show.hidden = d.open; grade.hidden = !d.open && !(state.checks[page] || {})[key]; }
    d.addEventListener("toggle", toggled);
    box.sync = toggled; // after a reset or an import, too
    d.after(box);
  }

  // The "Your progress" page: export, import and reset (the summary is drawn by render()).
  function tools(box) {
    var msg = el("p", { className: "bf-msg", role: "status" });
    var file = el("input", { type: "file", id: "bf-import", accept: ".json,application/json" });
    var reset = button("Reset progress…", "bf-reset", function () {
      confirm.hidden = false;
      confirm.querySelector(".bf-no").focus();
    });
    var confirm = el("p", { className: "bf-confirm", hidden: true }, [
      "Clear every page marked done and every self-check answer in this browser? ",
      button("Yes, clear it", "bf-yes", function () {
        state = empty(); save(); confirm.hidden = true; reset.focus();
        msg.textContent = "Progress cleared.";
      }),
      " ", button("Cancel", "bf-no", function () { confirm.hidden = true; reset.focus(); })
    ]);
    file.onchange = function () {
      var f = file.files[0];
      if (f) f.text().then(function (text) {
        var s, why;
        try { s = JSON.parse(text); why = problem(s); } catch (e) { why = "it is not valid JSON"; }
        if (why) msg.textContent = "Not imported: " + why + ". Your progress is unchanged.";
        else {
          state = s; save();
          msg.textContent = "Imported: " + Object.keys(s.done).length + " pages done.";
        }
        file.value = "";
      });
    };
    box.replaceChildren(
      el("p", {}, [button("Export progress (JSON file)", "bf-export", function () {
        var a = el("a", {
          download: "backend-fundamentals-progress.json",
          href: URL.createObjectURL(new Blob([JSON.stringify(state, null, 2)], { type: "application/json" }))
        });
        a.click();
        setTimeout(function () { URL.revokeObjectURL(a.href); }, 1000);
      })]),
      el("p", {}, [el("label", { htmlFor: "bf-import", textContent: "Import progress from a file: " }), file]),
      el("p", {}, [reset]), confirm, msg);
  }

  // Shows the stored state in every control of the page (after a change, or another tab's).
  function update() {
    var page = pathOf(location.href), done = state.done[page];
    document.querySelectorAll(".bf-done").forEach(function (b) { b.setAttribute("aria-pressed", !!done); });
    document.querySelectorAll(".bf-when").forEach(function (w) { w.textContent = done ? "Done on " + date(done) : ""; });
    document.querySelectorAll(".bf-check").forEach(function (c) { c.sync(); });
    document.querySelectorAll(".bf-grade button").forEach(function (b) {
      b.setAttribute("aria-pressed", (state.checks[page] || {})[b.dataset.q] === b.dataset.r);
    });
    var s = document.querySelector(".bf-score"), q = document.querySelectorAll(".bf-check").length;
    if (s) s.textContent = q ? (score([page]) || "Self-checks: none answered") + " (" + q + " on this page)" : "";
    render();
  }

  // The parts that are drawn from the state as a whole: summaries and the resume link.
  function render() {
    var article = document.querySelector("article.md-content__inner");
    var h1 = article && article.querySelector("h1");
    if (!h1) return;
    var page = pathOf(location.href), names = titles(), tool = article.querySelector("#bf-progress-tools");
    article.querySelectorAll(".bf-summary, .bf-resume").forEach(function (e) { e.remove(); });
    var box, links = [];
    if (tool) {
      tool.before(summary(Object.keys(names).filter(isTopic), names, "pages"));
    } else if (page === "") {
      if (state.last && names[state.last]) box = el("p", { className: "bf-box bf-resume" }, [
        "Continue where you left off: ", el("a", { href: ROOT + state.last, textContent: names[state.last] })]);
    } else if (!isTopic(page)) {
      article.querySelectorAll("a[href]").forEach(function (a) {
        var p = pathOf(a.href);
        if (isTopic(p) && links.indexOf(p) < 0 && (page.indexOf("paths/") === 0 || p.indexOf(page) === 0)) {
          links.push(p);
          names[p] = names[p] || a.textContent.trim();
        }
      });
      if (links.length) box = summary(links, names, "pages");
    }
    if (box) h1.after(box);
  }

  function setup() {
    var article = document.querySelector("article.md-content__inner");
    var h1 = article && article.querySelector("h1"), page = pathOf(location.href);
    if (!h1 || article.bfReady) return;
    article.bfReady = true;
    if (isTopic(page)) topic(article, page, h1);
    var tool = article.querySelector("#bf-progress-tools");
    if (tool) tools(tool);
    update();
  }

  addEventListener("storage", function (e) { if (e.key === KEY) { state = load(); update(); } });
  // This script runs before Material's bundle (overrides/main.html), so the first page gets
  // its controls early: before the browser first styles it when the page arrives fast (on
  // loopback, as measured; over a slow network the browser may style what it has first).
  // Added after (as before issue 11), they cost a second styling of the whole article: with
  // Material's `table:not([class])` rules an element inserted among the article's children
  // makes the browser restyle all of it (~1,700 elements on a topic page, in one Lighthouse
  // trace of its mobile emulation on this host). Pages swapped in by instant navigation come through
  // Material's document$, which the bundle defines; for this first page setup() has run.
  setup();
  function follow() { if (window.document$) window.document$.subscribe(setup); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", follow);
  else follow();
})();

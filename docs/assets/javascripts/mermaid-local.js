/*
 * Serve Mermaid from this site, never from a CDN.
 *
 * Material for MkDocs renders ```mermaid fences with the global `mermaid` and
 * fetches it from unpkg.com only when that global is undefined. This file
 * defines a small stand-in that is on every page (a few hundred bytes); the
 * real library (vendored, 2.7 MB) is loaded from this site the first time a
 * page actually has a diagram to draw. Material only calls initialize() and
 * render(), so those are the two methods the stand-in forwards.
 */
(function () {
  "use strict";
  var vendored = new URL("vendor/mermaid-11.12.0.min.js", document.currentScript.src).href;
  var config = {};
  var loading = null;

  function load() {
    if (!loading) {
      loading = new Promise(function (resolve, reject) {
        var script = document.createElement("script");
        script.src = vendored;
        script.onload = function () {
          window.mermaid.initialize(config);
          resolve(window.mermaid);
        };
        script.onerror = function () { reject(new Error("could not load " + vendored)); };
        document.head.appendChild(script);
      });
    }
    return loading;
  }

  window.mermaid = {
    initialize: function (options) { config = options || {}; },
    render: function (id, text) {
      return load().then(function (real) { return real.render(id, text); });
    },
  };
})();

/*
 * The search index on demand (issue 11).
 *
 * Material for MkDocs 9.8 requests search/search_index.json as soon as a page loads and
 * parses it on the main thread, before anyone searches. It was the largest transfer of a
 * topic page (128 KB gzip of ~220 KB). This script holds that one request back until the
 * reader shows they want to search: the search box takes focus (a click or tap on it or
 * its icon, or Material's shortcuts f, s and /, all of which focus the box), or the page
 * was opened from a search result (`?h=` asks Material to highlight the terms, which needs
 * the index). Material's own code is unchanged: it gets its index when the held request
 * is sent, and shows "Initializing search" until then, as it does on a slow network.
 *
 * It must run before Material's bundle, which opens the request at once:
 * overrides/main.html puts it first in the scripts block.
 */
(function () {
  "use strict";
  var INDEX = /\/search\/search_index\.json$/;
  var held = [];
  var wanted = /[?&]h=/.test(location.search);

  function release() {
    wanted = true;
    held.splice(0).forEach(function (send) { send(); });
  }

  var open = XMLHttpRequest.prototype.open;
  var send = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.open = function (method, url) {
    this.searchIndexRequest = INDEX.test(new URL(String(url), location.href).pathname);
    return open.apply(this, arguments);
  };
  XMLHttpRequest.prototype.send = function () {
    var request = this, args = arguments;
    if (request.searchIndexRequest && !wanted) {
      held.push(function () { send.apply(request, args); });
      return;
    }
    return send.apply(request, args);
  };

  function onIntent(event) {
    var target = event.target;
    if (target instanceof Element &&
        target.closest("[data-md-component=search], label[for=__search], #__search")) {
      release();
    }
  }
  document.addEventListener("focusin", onIntent, true);
  document.addEventListener("pointerdown", onIntent, true);
  document.addEventListener("change", onIntent, true);
})();

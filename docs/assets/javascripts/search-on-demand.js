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
 * It holds back Material's search worker the same way. Material starts it at load (a Web
 * Worker: a JavaScript engine of its own that parses lunr, ~0.27 s of CPU per page load
 * measured in Chromium here) although it has nothing to do before the index arrives. Until
 * the reader shows intent, `new Worker(<the search worker>)` returns a stand-in that keeps
 * Material's listeners and queues what Material posts; on intent the real worker starts,
 * gets the queued messages in order, and its messages and errors reach the same listeners.
 * Material only posts to the worker and listens for its "message" events (rxjs fromEvent).
 *
 * It must run before Material's bundle, which opens the request and the worker at once:
 * overrides/main.html puts it first in the scripts block.
 */
(function () {
  "use strict";
  var INDEX = /\/search\/search_index\.json$/;
  var WORKER = /\/assets\/javascripts\/workers\/search\.[^/]*\.js$/;
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

  var RealWorker = window.Worker;
  function LazyWorker(url, options) {
    var path = new URL(String(url), location.href).pathname;
    if (wanted || !RealWorker || !WORKER.test(path)) {
      return new RealWorker(url, options);
    }
    var standIn = new EventTarget();
    var queue = [];
    var real = null, ended = false;
    standIn.postMessage = function (message) {
      if (real) { real.postMessage(message); } else { queue.push(message); }
    };
    standIn.terminate = function () {
      queue = [];
      ended = true;
      if (real) { real.terminate(); }
    };
    held.push(function () {
      if (ended) { return; }
      real = new RealWorker(url, options);
      real.addEventListener("message", function (event) {
        standIn.dispatchEvent(new MessageEvent("message", { data: event.data }));
      });
      real.addEventListener("error", function (event) {
        standIn.dispatchEvent(new ErrorEvent("error", { message: event.message }));
      });
      queue.splice(0).forEach(function (message) { real.postMessage(message); });
    });
    return standIn;
  }
  if (RealWorker) { window.Worker = LazyWorker; }

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

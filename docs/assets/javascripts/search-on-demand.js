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
 * It holds back Material's search worker too, until that intent (highlighting `?h=` terms
 * needs the index, not the worker). Material starts the worker at load (a Web Worker: a
 * JavaScript engine of its own that parses lunr: Chromium's CPU per page load, 12 loads a
 * run, was 1.31 -> 1.04 and 1.50 -> 1.22 CPU-s in two interleaved pairs of runs with and
 * without it) although it has nothing to do before the index arrives. Until the reader
 * shows intent, `new Worker(<the search worker>)` returns a stand-in that keeps Material's
 * listeners and queues what Material posts; on intent the real worker starts and gets the
 * queued messages in order, and its "message" events reach the same listeners. Material
 * 9.8 only posts to the worker and listens for "message" (rxjs fromEvent); the stand-in
 * does no more than that (no transfer list, no "messageerror"; an error is passed on as a
 * plain ErrorEvent with its message).
 *
 * It must run before Material's bundle, which opens the request and the worker at once:
 * overrides/main.html puts it first in the scripts block.
 */
(function () {
  "use strict";
  var INDEX = /\/search\/search_index\.json$/;
  var WORKER = /\/assets\/javascripts\/workers\/search\.[^/]*\.js$/;
  var held = [];  // the index request, then the worker, each sent or started on intent
  var intent = false;
  var highlight = /[?&]h=/.test(location.search);

  function release() {
    intent = true;
    held.splice(0).forEach(function (start) {
      try { start(); } catch (error) { console.warn("search:", error); }  // the rest still go
    });
  }

  var open = XMLHttpRequest.prototype.open;
  var send = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.open = function (method, url) {
    this.searchIndexRequest = INDEX.test(new URL(String(url), location.href).pathname);
    return open.apply(this, arguments);
  };
  XMLHttpRequest.prototype.send = function () {
    var request = this, args = arguments;
    if (request.searchIndexRequest && !intent && !highlight) {
      held.push(function () { send.apply(request, args); });
      return;
    }
    return send.apply(request, args);
  };

  var RealWorker = window.Worker;
  function LazyWorker(url, options) {
    var path = new URL(String(url), location.href).pathname;
    if (intent || !WORKER.test(path)) {
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
      try {
        real = new RealWorker(url, options);
      } catch (error) {  // e.g. no workers from file://: say so to Material's listeners
        standIn.dispatchEvent(new ErrorEvent("error", { message: String(error) }));
        throw error;
      }
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
  if (RealWorker) {
    LazyWorker.prototype = RealWorker.prototype;
    window.Worker = LazyWorker;
  }

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

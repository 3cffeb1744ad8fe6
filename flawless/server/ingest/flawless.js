/* flawless.js: reports a page's uncaught errors and unhandled promise rejections to flawless.

   <script src="http://FLAWLESS_HOST:PORT/flawless.js" data-key="KEY" data-release="SHA"></script>

   data-key: an ingest key of the server (public by nature: the server checks the page's
   origin against allowed_origins and rate-limits each key and address); data-release: the
   commit the page's scripts were built from; data-max-reports: at most this many reports
   per page load (default 10). Sends the error's type, message and raw stack, its file, line
   and column, and the page's URL without its query string or fragment; nothing else.
   No dependencies, no build step; flawless.report(error) reports a caught error. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.flawless) {
    return;
  }
  var MAX_STACK = 65536;
  var MAX_MESSAGE = 16384;
  var key = script.getAttribute("data-key") || "";
  var release = script.getAttribute("data-release") || "";
  var left = parseInt(script.getAttribute("data-max-reports") || "10", 10);
  var endpoint = new URL("/browser", script.src).href +
    (key ? "?key=" + encodeURIComponent(key) : "");

  function page() {
    return location.origin + location.pathname;
  }

  function describe(value) {
    if (typeof value === "string") {
      return value;
    }
    try {
      var text = JSON.stringify(value);
      if (typeof text === "string") {
        return text;
      }
    } catch (ignored) {
      // a cycle, a BigInt: fall through
    }
    return String(value);
  }

  function reportOf(error, kind, file, line, column) {
    var report = {kind: kind, page: page()};
    if (release) {
      report.release = release;
    }
    if (error instanceof Error || (error && typeof error === "object" && "stack" in error)) {
      report.type = String(error.name || "Error");
      report.message = String(error.message || "");
      if (typeof error.stack === "string") {
        report.stack = error.stack.slice(0, MAX_STACK);
      }
    } else {
      report.type = kind === "rejection" ? "UnhandledRejection" : "Error";
      report.message = describe(error);
    }
    report.message = report.message.slice(0, MAX_MESSAGE);
    if (file) {
      report.file = String(file);
    }
    if (line > 0) {
      report.line = line;
    }
    if (column > 0) {
      report.column = column;
    }
    return report;
  }

  function beacon(body) {
    try {
      if (navigator.sendBeacon) {
        navigator.sendBeacon(endpoint, new Blob([body], {type: "text/plain"}));
      }
    } catch (ignored) {
      // nothing more can be done from a page
    }
  }

  function send(report) {
    if (left <= 0) {
      return;
    }
    left -= 1;
    var body = JSON.stringify(report);
    if (typeof fetch !== "function") {
      beacon(body);
      return;
    }
    try {
      // text/plain, no credentials: a simple request, no preflight, no cookie sent.
      fetch(endpoint, {method: "POST", body: body, keepalive: true, credentials: "omit",
                       headers: {"Content-Type": "text/plain"}}).catch(function () {});
    } catch (ignored) {
      beacon(body);
    }
  }

  window.addEventListener("error", function (event) {
    if (!(event instanceof ErrorEvent)) {
      return;  // a resource that failed to load, not a script error
    }
    send(reportOf(event.error, "error", event.filename, event.lineno, event.colno));
  }, true);

  window.addEventListener("unhandledrejection", function (event) {
    send(reportOf(event.reason, "rejection"));
  });

  window.flawless = {
    report: function (error) {
      send(reportOf(error, "error"));
    }
  };
}());

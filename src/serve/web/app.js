// epicenter's page: the incident list refreshes itself. Every few seconds it
// asks the server for its rows (same filters, rendered and escaped by the
// server) and swaps them in; rows that were not there before are marked and
// announced. Without JavaScript the page still works; it just does not move.
"use strict";

(function () {
  var POLL_MS = 3000;
  var table = document.querySelector("table[data-poll]");
  if (!table) {
    return;
  }
  var url = table.getAttribute("data-poll");
  var body = document.getElementById("rows");
  var live = document.getElementById("live");
  var last = body.innerHTML;

  function ids(root) {
    var out = {};
    root.querySelectorAll("tr[data-id]").forEach(function (tr) {
      out[tr.getAttribute("data-id")] = true;
    });
    return out;
  }

  function say(text) {
    if (live.textContent !== text) {
      live.textContent = text;
    }
  }

  function poll() {
    // A tab nobody looks at asks nothing; it catches up when shown.
    if (document.hidden) {
      window.setTimeout(poll, POLL_MS);
      return;
    }
    fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.status === 401) {
          say("Signed out: reload the page to sign in again.");
          return null;
        }
        if (!r.ok) {
          say("The server answered " + r.status + "; retrying.");
          return null;
        }
        return r.text();
      })
      .then(function (html) {
        if (html === null || html === last) {
          return;
        }
        var before = ids(body);
        var wasFocused = body.contains(document.activeElement)
          ? document.activeElement.getAttribute("href")
          : null;
        body.innerHTML = html;
        last = html;
        var fresh = 0;
        body.querySelectorAll("tr[data-id]").forEach(function (tr) {
          if (!before[tr.getAttribute("data-id")]) {
            tr.classList.add("new");
            fresh += 1;
          }
        });
        if (wasFocused) {
          var again = body.querySelector('a[href="' + wasFocused + '"]');
          if (again) {
            again.focus();
          }
        }
        var n = body.querySelectorAll("tr[data-id]").length;
        var text = n + (n === 1 ? " incident" : " incidents") + ", newest first.";
        if (fresh > 0) {
          text += " " + fresh + " new.";
        }
        say(text);
      })
      .catch(function () {
        say("Cannot reach the server; retrying.");
      })
      .finally(function () {
        window.setTimeout(poll, POLL_MS);
      });
  }

  window.setTimeout(poll, POLL_MS);
})();

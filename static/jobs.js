// Live progress of background jobs on the exports page. Without JavaScript the page
// refreshes itself (a <noscript> meta refresh) and offers a Refresh link.
(function () {
  "use strict";
  var rows = document.querySelectorAll("tr[data-job-status-url][data-finished='false']");
  if (!rows.length || !window.fetch) {
    return;
  }
  var POLL_MS = 1500;

  function update(row, state) {
    var bar = row.querySelector(".js-job-progress");
    var message = row.querySelector(".js-job-message");
    var status = row.querySelector(".js-job-status");
    if (bar) {
      bar.value = state.progress;
      bar.textContent = state.progress + "%";
    }
    if (message) {
      message.textContent = state.message || "";
    }
    if (status) {
      status.textContent = state.status_label;
    }
  }

  function poll(row) {
    fetch(row.getAttribute("data-job-status-url"), {
      credentials: "same-origin",
      headers: { "Accept": "application/json" }
    }).then(function (response) {
      if (!response.ok) {
        throw new Error("status " + response.status);
      }
      return response.json();
    }).then(function (state) {
      update(row, state);
      if (state.finished) {
        // Reload once to show the download button or the error in full.
        window.location.reload();
        return;
      }
      window.setTimeout(function () { poll(row); }, POLL_MS);
    }).catch(function () {
      window.setTimeout(function () { poll(row); }, POLL_MS * 4);
    });
  }

  rows.forEach(function (row) { poll(row); });
}());

// Grids (layout: grid): move between cells with the arrow keys and Enter, paste a block
// copied from a spreadsheet (tab-separated columns, one line per row) into a cell, and
// add lines as the block needs them. Everything posts the ordinary field names
// (GROUP-ROW-ITEM, rows-GROUP); the server decides everything again on save.
(function () {
  "use strict";
  var form = document.querySelector("form.entry-form");
  if (!form || !form.querySelector("table.entry-grid")) { return; }

  function isCell(el) { return !!(el && el.classList && el.classList.contains("g-in")); }
  function usable(el) { return !!el && !el.disabled && !el.closest("[hidden]"); }
  function cellsOf(tr) {
    return Array.prototype.filter.call(tr.children, function (c) {
      return !c.classList.contains("grid-actions");
    });
  }
  function controlOf(cell) { return cell ? cell.querySelector(".g-in") : null; }

  function focusCell(el) {
    el.focus();
    if (el.tagName === "INPUT") { el.select(); }
  }

  // Move from a cell by rows (dr) or columns (dc), skipping cells that cannot be entered.
  function move(from, dr, dc) {
    var tr = from.closest("tr");
    var tbody = tr.parentElement;
    var r = Array.prototype.indexOf.call(tbody.rows, tr);
    var c = cellsOf(tr).indexOf(from.closest("td, th"));
    for (;;) {
      r += dr;
      c += dc;
      var row = tbody.rows[r];
      if (!row) { return; }
      var cells = cellsOf(row);
      if (c < 0 || c >= cells.length) { return; }
      var target = controlOf(cells[c]);
      if (usable(target)) { focusCell(target); return; }
    }
  }

  form.addEventListener("keydown", function (event) {
    var el = event.target;
    if (!isCell(el) || event.altKey || event.ctrlKey || event.metaKey) { return; }
    var text = el.tagName === "INPUT";
    var atStart = !text || (el.selectionStart === 0 && el.selectionEnd === 0);
    var atEnd = !text || (el.selectionStart === el.value.length);
    switch (event.key) {
      case "ArrowUp": move(el, -1, 0); break;
      case "ArrowDown": move(el, 1, 0); break;
      case "Enter": move(el, event.shiftKey ? -1 : 1, 0); break;
      case "ArrowLeft": if (!atStart) { return; } move(el, 0, -1); break;
      case "ArrowRight": if (!atEnd) { return; } move(el, 0, 1); break;
      default: return;
    }
    event.preventDefault();  // no implicit submit on Enter, no select change on arrows
  });

  // --- reasons for change and the history of a saved cell -------------------------------------

  function columnLabel(el) {
    var table = el.closest("table");
    var index = cellsOf(el.closest("tr")).indexOf(el.closest("td, th"));
    var th = cellsOf(table.tHead.rows[0])[index];
    var label = th && th.querySelector(".grid-label");
    return label ? label.firstChild.textContent.trim() : "";
  }

  // A saved cell being changed gets its reason box (the server asks for it on save).
  function askReason(event) {
    var el = event.target;
    if (!isCell(el)) { return; }
    var wrap = el.closest("[data-saved]");
    if (!wrap || wrap.querySelector(".reason-box")) { return; }
    var table = el.closest("table");
    var box = document.createElement("div");
    box.className = "reason-box grid-reason";
    box.id = el.name + "-reasonbox";
    var input = document.createElement("input");
    input.type = "text";
    input.className = "g-reason";
    input.name = input.id = "reason-" + el.name;
    input.maxLength = 2000;
    input.autocomplete = "off";
    input.placeholder = table.getAttribute("data-msg-reason-short") || "";
    input.setAttribute("aria-label", (table.getAttribute("data-msg-reason") || "")
      .replace("{label}", columnLabel(el)).replace("{value}", wrap.getAttribute("data-saved")));
    var given = el.closest("tr").querySelector(".grid-reason .g-reason:not([data-copied])");
    if (given && given.value) {
      input.value = given.value;
      input.setAttribute("data-copied", "");
    }
    box.appendChild(input);
    wrap.appendChild(box);
  }
  form.addEventListener("input", askReason);
  form.addEventListener("change", askReason);

  // One reason usually explains every change of a line: typing it in one box fills the
  // line's other reason boxes that are empty (or were filled this way), as a proposal.
  form.addEventListener("input", function (event) {
    var el = event.target;
    if (!el.classList.contains("g-reason") || !el.closest(".entry-grid")) { return; }
    el.removeAttribute("data-copied");
    el.closest("tr").querySelectorAll(".grid-reason .g-reason").forEach(function (other) {
      if (other !== el && (other.value === "" || other.hasAttribute("data-copied"))) {
        other.value = el.value;
        other.setAttribute("data-copied", "");
      }
    });
  });

  // One "History of ..." link under the grid follows the focused saved cell.
  form.addEventListener("focusin", function (event) {
    var el = event.target;
    if (!isCell(el) || !el.closest("[data-saved]")) { return; }
    var table = el.closest("table");
    var group = table.getAttribute("data-group");
    var link = document.getElementById("grid-history-" + group);
    var parts = el.name.split("-");
    if (!link || parts.length !== 3) { return; }
    link.href = table.getAttribute("data-history") + "?group=" + encodeURIComponent(group) +
      "&row=" + parts[1] + "&item=" + encodeURIComponent(parts[2]);
    link.textContent = (table.getAttribute("data-msg-history") || "")
      .replace("{label}", columnLabel(el)).replace("{n}", parts[1]);
    link.hidden = false;
  });

  // --- adding lines --------------------------------------------------------------------------

  var RENAMED = ["id", "name", "for", "aria-labelledby", "aria-describedby", "data-show-if",
                 "href"];

  function nextDate(text) {
    var m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text || "");
    if (!m) { return ""; }
    var d = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3] + 1));
    return d.toISOString().slice(0, 10);
  }

  // A new line, made from the last one with every value, message and reason taken out.
  function addLine(table) {
    var tbody = table.tBodies[0];
    var max = parseInt(table.getAttribute("data-max-rows") || "0", 10);
    var model = tbody.rows[tbody.rows.length - 1];
    if (!model || (max && tbody.rows.length >= max)) { return null; }
    var group = table.getAttribute("data-group");
    var number = parseInt(table.getAttribute("data-next-row"), 10);
    table.setAttribute("data-next-row", String(number + 1));
    var from = new RegExp("(^|[^A-Za-z0-9_])" + group + "-" + model.getAttribute("data-row") +
                          "(?![0-9])", "g");
    var line = model.cloneNode(true);
    [line].concat(Array.prototype.slice.call(line.querySelectorAll("*"))).forEach(function (el) {
      RENAMED.forEach(function (attr) {
        var value = el.getAttribute(attr);
        if (value) { el.setAttribute(attr, value.replace(from, "$1" + group + "-" + number)); }
      });
    });
    line.setAttribute("data-row", String(number));
    line.classList.add("grid-new");
    line.querySelectorAll(".reason-box, .grid-msg, .grid-badge, .grid-history, .grid-saved-only," +
                          " [id$='-note']").forEach(function (el) { el.remove(); });
    line.querySelectorAll("[data-saved]").forEach(function (el) { el.removeAttribute("data-saved"); });
    line.querySelectorAll(".grid-has-error, .grid-has-note, .grid-has-missing").forEach(function (el) {
      el.classList.remove("grid-has-error", "grid-has-note", "grid-has-missing");
    });
    line.querySelectorAll(".g-in, output").forEach(function (el) {
      ["aria-invalid", "aria-describedby", "title"].forEach(function (a) { el.removeAttribute(a); });
      el.classList.remove("is-invalid");
      if (el.tagName === "OUTPUT") { el.textContent = "—"; } else { el.value = ""; }
    });
    line.querySelectorAll("input[type=checkbox]").forEach(function (el) { el.checked = false; });
    line.querySelectorAll("details").forEach(function (el) { el.open = false; });
    var dateItem = table.getAttribute("data-date-item");
    if (dateItem) {
      var before = model.querySelector("[name$='-" + dateItem + "']");
      var date = line.querySelector("[name$='-" + dateItem + "']");
      if (before && date) { date.value = nextDate(before.value); }
    }
    tbody.appendChild(line);
    var rows = form.querySelector("input[name='rows-" + group + "']");
    if (rows) { rows.value = rows.value ? rows.value + "," + number : String(number); }
    return line;
  }

  // --- pasting a block -------------------------------------------------------------------------

  function setValue(el, raw) {
    var value = raw.trim();
    if (el.tagName === "SELECT") {
      var wanted = value.toLowerCase();
      var match = Array.prototype.find.call(el.options, function (o) {
        return o.value.toLowerCase() === wanted || o.text.trim().toLowerCase() === wanted;
      });
      if (!match && value !== "") { return false; }
      el.value = match ? match.value : "";
    } else {
      el.value = value;
    }
    el.dispatchEvent(new Event("input", { bubbles: true }));  // opens a saved cell's reason
    return true;
  }

  function say(table, text) {
    var status = document.getElementById("grid-status-" + table.getAttribute("data-group"));
    if (status) { status.textContent = text; }
  }

  function paste(start, text) {
    var lines = text.replace(/\r\n?/g, "\n").replace(/\n$/, "").split("\n").map(function (l) {
      return l.split("\t");
    });
    var table = start.closest("table");
    var tbody = table.tBodies[0];
    var heads = cellsOf(table.tHead.rows[0]);
    var first = cellsOf(start.closest("tr")).indexOf(start.closest("td, th"));
    var columns = [];
    heads.forEach(function (th, i) {
      if (i >= first && th.hasAttribute("data-editable")) { columns.push(i); }
    });
    var r0 = Array.prototype.indexOf.call(tbody.rows, start.closest("tr"));
    var added = 0, refused = 0, left = 0;
    for (var i = 0; i < lines.length; i++) {
      var tr = tbody.rows[r0 + i];
      if (!tr) {
        tr = addLine(table);
        if (!tr) { left = lines.length - i; break; }
        added++;
      }
      var cells = cellsOf(tr);
      for (var j = 0; j < lines[i].length && j < columns.length; j++) {
        var el = controlOf(cells[columns[j]]);
        if (el && !setValue(el, lines[i][j])) { refused++; }
      }
    }
    form.dispatchEvent(new CustomEvent("entry:rows", { bubbles: true }));
    form.dispatchEvent(new Event("change", { bubbles: true }));  // show or hide questions
    var message = (table.getAttribute("data-msg-pasted") || "")
      .replace("{lines}", String(lines.length - left)).replace("{added}", String(added));
    if (refused) { message += " " + (table.getAttribute("data-msg-refused") || "").replace("{n}", refused); }
    if (left) { message += " " + (table.getAttribute("data-msg-full") || "").replace("{n}", left); }
    say(table, message);
  }

  form.addEventListener("paste", function (event) {
    var el = event.target;
    if (!isCell(el) || !event.clipboardData) { return; }
    var text = event.clipboardData.getData("text/plain");
    if (text.indexOf("\t") < 0 && text.replace(/\r?\n$/, "").indexOf("\n") < 0) { return; }
    event.preventDefault();
    paste(el, text);
  });
})();

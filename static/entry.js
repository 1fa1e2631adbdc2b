// Data entry comfort: show or hide questions as answers change, and open the reason box
// next to a saved value being changed. The server decides everything again on save: a
// value posted for a hidden question is refused there, whatever this script did.
(function () {
  "use strict";
  var form = document.querySelector("form.entry-form");
  if (!form) { return; }

  function valueOf(name) {
    var inputs = form.querySelectorAll('[name="' + name + '"]');
    var values = [];
    var single = "";
    inputs.forEach(function (el) {
      if (el.disabled) { return; }
      if (el.type === "radio") {
        if (el.checked) { single = el.value; }
      } else if (el.type === "checkbox") {
        if (el.checked) { values.push(el.value); }
      } else {
        single = (el.value || "").trim();
      }
    });
    if (inputs.length && inputs[0].type === "checkbox") { return values; }
    return single;
  }

  function isBlank(v) { return Array.isArray(v) ? v.length === 0 : v === ""; }

  // Numbers as the server reads them (ecrf/crf/values.py): a comma may be the decimal
  // mark; a value it would refuse (not a number, outside the hard range) counts as blank.
  var INTEGER = /^[+-]?[0-9]+$/;
  var DECIMAL = /^[+-]?(?:[0-9]+(?:[.,][0-9]*)?|[.,][0-9]+)$/;
  var ISO_DATE = /^[0-9]{4}-[0-9]{2}-[0-9]{2}$/;

  function toNumber(text) { return Number(String(text).replace(",", ".")); }

  function fieldValue(o) {
    var v = valueOf(o.f);
    if (isBlank(v)) { return null; }
    if (o.k === "int" || o.k === "dec") {
      if (!(o.k === "int" ? INTEGER : DECIMAL).test(v)) { return null; }
      var n = toNumber(v);
      if (o.min !== undefined && n < toNumber(o.min)) { return null; }
      if (o.max !== undefined && n > toNumber(o.max)) { return null; }
      return n;
    }
    if (o.k === "date") { return ISO_DATE.test(v) ? v : null; }
    return v;
  }

  function operand(o) {
    if (o.f !== undefined) { return fieldValue(o); }
    return o.num ? toNumber(o.v) : o.v;
  }

  function compare(operator, a, b) {
    switch (operator) {
      case "=": return a === b;
      case "!=": return a !== b;
      case "<": return a < b;
      case "<=": return a <= b;
      case ">": return a > b;
      case ">=": return a >= b;
    }
    return null;
  }

  // Three-valued, as on the server: a blank answer makes a comparison unknown (null), and
  // an unknown condition hides the question.
  function evaluate(node) {
    var v, w, i, r, unknown;
    switch (node.op) {
      case "cmp":
        v = operand(node.a); w = operand(node.b);
        return v === null || w === null ? null : compare(node.cmp, v, w);
      case "in": v = fieldValue(node.a); return v === null ? null : node.values.indexOf(v) >= 0;
      case "nin": v = fieldValue(node.a); return v === null ? null : node.values.indexOf(v) < 0;
      case "blank": return isBlank(valueOf(node.a.f));
      case "has": v = fieldValue(node.a); return v === null ? null : v.indexOf(node.value) >= 0;
      case "not": r = evaluate(node.args[0]); return r === null ? null : !r;
      case "and":
        unknown = false;
        for (i = 0; i < node.args.length; i++) {
          r = evaluate(node.args[i]);
          if (r === false) { return false; }
          if (r === null) { unknown = true; }
        }
        return unknown ? null : true;
      case "or":
        unknown = false;
        for (i = 0; i < node.args.length; i++) {
          r = evaluate(node.args[i]);
          if (r === true) { return true; }
          if (r === null) { unknown = true; }
        }
        return unknown ? null : false;
    }
    return null;
  }

  var conditional = [];
  function scan() {  // again when lines are added in the page ("entry:rows", static/grid.js)
    conditional = [];
    form.querySelectorAll("[data-show-if]").forEach(function (wrap) {
      try {
        conditional.push({ wrap: wrap, tree: JSON.parse(wrap.getAttribute("data-show-if")) });
      } catch (e) { /* leave it as the server rendered it */ }
    });
  }
  scan();

  function applyShowIf() {
    // Conditions may chain (A shown if B, B shown if C): settle in a few passes.
    for (var pass = 0; pass < 4; pass++) {
      var changed = false;
      conditional.forEach(function (c) {
        var show = evaluate(c.tree) === true;
        if (c.wrap.hidden === !show) { return; }
        changed = true;
        c.wrap.hidden = !show;
        c.wrap.querySelectorAll("input, select, textarea").forEach(function (el) {
          el.disabled = !show;
        });
      });
      if (!changed) { break; }
    }
  }

  function openReason(event) {
    var wrap = event.target.closest("[data-saved]");
    if (!wrap || event.target.name.indexOf("reason-") === 0) { return; }
    var box = wrap.querySelector(".reason-box");
    if (box && box.hidden) { box.hidden = false; }
  }

  // As the user types (input), not only when a field is left (change).
  form.addEventListener("change", function (event) { applyShowIf(); openReason(event); });
  form.addEventListener("input", function (event) { applyShowIf(); openReason(event); });
  form.addEventListener("entry:rows", scan);
  applyShowIf();

  // After "Add a row" the new row's first question has the focus.
  var added = form.getAttribute("data-focus");
  var target = added ? document.getElementById(added) : null;
  var first = target ? target.querySelector("input:not([type=hidden]), select, textarea") : null;
  if (first && !document.getElementById("error-summary")) { first.focus(); }

  var summary = document.getElementById("error-summary") || document.getElementById("stale");
  if (summary) { summary.focus(); }
})();

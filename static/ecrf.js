// Progressive enhancement only: every flow works without JavaScript.
document.documentElement.classList.add("js");
document.querySelectorAll("select[data-autosubmit]").forEach(function (el) {
  el.addEventListener("change", function () { el.form.submit(); });
});

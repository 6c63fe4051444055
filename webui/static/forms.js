// A form shown again after a refusal: bring its first message into view (on a phone the
// refused form may be far down the page) and put the cursor in the field it names.
(function () {
  const problem = document.querySelector("[aria-invalid=true], [data-form-error]");
  if (!problem) return;
  problem.scrollIntoView({ block: "center" });
  if (problem.matches("input, select, textarea")) problem.focus({ preventScroll: true });
})();

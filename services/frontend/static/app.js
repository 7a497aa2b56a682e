// A result rendered in answer to the form's POST: show its permalink in the address bar, so that
// reloading the page shows the same result instead of submitting the form again.
const permalink = document.body.dataset.permalink;
if (permalink && window.location.pathname !== permalink) {
  window.history.replaceState(null, "", permalink);
}

// "All" and "None" buttons for the operation checkboxes.
for (const button of document.querySelectorAll("[data-check]")) {
  button.addEventListener("click", () => {
    for (const box of document.querySelectorAll("input[name=operations]")) {
      box.checked = button.dataset.check === "all";
    }
  });
}

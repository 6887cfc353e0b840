// hearme workbench: keyboard shortcuts of the coding screen. Plain JavaScript, no build
// step, loaded as a file (the Content-Security-Policy allows no inline script).
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("coding");
  if (!form) {
    return;
  }
  var boxes = {};
  form.querySelectorAll("input[data-key]").forEach(function (box) {
    boxes[box.getAttribute("data-key")] = box;
  });
  var saving = false;
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) {
      return;
    }
    var target = event.target;
    var typing = target && (target.tagName === "TEXTAREA" ||
      (target.tagName === "INPUT" && target.type !== "checkbox") || target.tagName === "SELECT");
    if (typing) {
      return;
    }
    if (event.key === "Enter") {
      if (target && (target.tagName === "A" || target.tagName === "BUTTON")) {
        return; // the focused link or button does what it says
      }
      event.preventDefault();
      if (!saving) {
        saving = true;
        form.requestSubmit();
      }
      return;
    }
    var box = boxes[event.key.toLowerCase()];
    if (box) {
      event.preventDefault();
      box.checked = !box.checked;
      box.dispatchEvent(new Event("change", { bubbles: true }));
    }
  });
});

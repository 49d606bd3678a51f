// Size each email frame to its content, and mark it rendered (the browser test reads the marks).
// The frames are sandboxed without scripts; same-origin lets this page measure them.
document.querySelectorAll("iframe.email").forEach(function (frame) {
  function measure() {
    var doc = frame.contentDocument;
    if (!doc || !doc.body) { return; }
    frame.style.height = Math.max(160, Math.ceil(doc.body.getBoundingClientRect().height) + 40) + "px";
    frame.dataset.rendered = "yes";
    frame.dataset.textLength = String(doc.body.innerText.trim().length);
    var rendered = document.querySelectorAll("iframe.email[data-rendered=yes]").length;
    document.body.dataset.framesRendered = String(rendered);
  }
  frame.addEventListener("load", measure);
  if (frame.contentDocument && frame.contentDocument.readyState === "complete") { measure(); }
});

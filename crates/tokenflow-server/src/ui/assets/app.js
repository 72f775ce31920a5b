// The UI's one script; every page works without it.
(function () {
  'use strict';

  // Copy buttons (a device login's code and link): shown only where this script runs. One
  // listener on the document, so buttons swapped in by a live update work too.
  function showCopyButtons() {
    var buttons = document.querySelectorAll('button[data-copy][hidden]');
    for (var i = 0; i < buttons.length; i++) { buttons[i].hidden = false; }
  }
  function copied(button) {
    button.textContent = 'Copied';
    button.classList.add('copied');
  }
  // Without the asynchronous clipboard API (a page not served over HTTPS or from localhost):
  // select the text and let the browser copy the selection.
  function copySelected(element, button) {
    var range = document.createRange();
    range.selectNodeContents(element);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    if (document.execCommand && document.execCommand('copy')) { copied(button); }
  }
  document.addEventListener('click', function (event) {
    var button = event.target.closest ? event.target.closest('button[data-copy]') : null;
    var element = button && document.getElementById(button.getAttribute('data-copy'));
    if (!element) { return; }
    var text = element.textContent.trim();
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(
        function () { copied(button); },
        function () { copySelected(element, button); });
    } else {
      copySelected(element, button);
    }
  });
  showCopyButtons();

  // Live updates of a run page: while the run is waiting or running, the server pushes an event
  // (server-sent events) whenever the run changes, and the page swaps in the new detail fragment
  // (its path on the diagram and its timeline).
  var detail = document.getElementById('run-detail');
  if (!detail || detail.getAttribute('data-live') !== 'true' || !window.EventSource) {
    return;
  }
  var run = detail.getAttribute('data-run');
  var source = new EventSource('/runs/' + encodeURIComponent(run) + '/events');
  source.addEventListener('update', function () {
    fetch('/runs/' + encodeURIComponent(run) + '/fragment', { credentials: 'same-origin' })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html !== null) {
          detail.innerHTML = html;
          showCopyButtons();
        }
      });
  });
  source.addEventListener('end', function () { source.close(); });
})();
